// Search from the file system. Material's search runs in a Web Worker, and browsers refuse to
// start a worker from a file:// URL. Opened from the file system, the worker's script runs in a
// hidden iframe of the page instead; messages go both ways as "message" events, as between a page
// and its worker. (The name tells Material's offline plugin that this shim is present.)
(function () {
  if (location.protocol !== "file:") return;

  class FrameWorker extends EventTarget {
    constructor(url) {
      super();
      const frame = document.createElement("iframe");
      frame.style.display = "none";
      document.documentElement.appendChild(frame);
      this.scope = frame.contentWindow;
      this.scope.postMessage = (data) => this.deliver(data);
      const script = this.scope.document.createElement("script");
      this.ready = new Promise((resolve) => { script.onload = resolve; });
      script.src = new URL(url, location.href).href;
      this.scope.document.documentElement.appendChild(script);
    }

    postMessage(data) {
      this.ready.then(() => this.scope.dispatchEvent(new this.scope.MessageEvent("message", { data })));
    }

    deliver(data) {
      const event = new MessageEvent("message", { data });
      if (this.onmessage) this.onmessage(event);
      this.dispatchEvent(event);
    }

    terminate() {
      if (this.scope.frameElement) this.scope.frameElement.remove();
    }
  }

  window.Worker = FrameWorker;
})();
