// MathJax 2 from the site itself (assets/mathjax/, copied in by hooks/mathjax.py at build time):
// its combined configuration (TeX in, HTML-CSS out) with the STIX web fonts it ships.
// Only arithmatex's elements (pages and docstrings) and the notebooks' Markdown cells are read:
// every element with a class is skipped unless it has one of processClass's.
window.MathJax = {
  config: ["TeX-AMS-MML_HTMLorMML-full.js"],
  tex2jax: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    ignoreClass: ".+",
    processClass: "arithmatex|jp-RenderedMarkdown",
  },
  "HTML-CSS": { availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null },
  showMathMenu: false,
  messageStyle: "none",
};
