// MathJax 2 from the site itself (assets/mathjax/, copied in by hooks/mathjax.py at build time).
// TeX in, SVG out: SVG needs no web fonts, so the equations render from the file system too.
// Only arithmatex's elements (pages and docstrings) and the notebooks' Markdown cells are read:
// every element with a class is skipped unless it has one of processClass's.
window.MathJax = {
  jax: ["input/TeX", "output/SVG"],
  extensions: ["tex2jax.js"],
  TeX: { extensions: ["AMSmath.js", "AMSsymbols.js"] },
  tex2jax: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    ignoreClass: ".+",
    processClass: "arithmatex|jp-RenderedMarkdown",
  },
  SVG: { font: "STIX-Web" },
  showMathMenu: false,
  messageStyle: "none",
};
