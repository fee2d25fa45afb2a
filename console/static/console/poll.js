/* Live panels without a build step: an element with data-poll-url is replaced by the HTML
 * fragment at that URL every data-poll-seconds (default 2) until the fragment marks itself
 * finished (data-finished="true" on its root), the page is hidden, or the session is gone. */
"use strict";

(function () {
  function schedule(panel) {
    const seconds = parseFloat(panel.dataset.pollSeconds || "2");
    window.setTimeout(function () { refresh(panel); }, Math.max(seconds, 0.5) * 1000);
  }

  function refresh(panel) {
    if (document.hidden) { schedule(panel); return; }
    fetch(panel.dataset.pollUrl, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        panel.innerHTML = html;
        panel.dataset.refreshed = String(Number(panel.dataset.refreshed || "0") + 1);
        const root = panel.firstElementChild;
        if (!(root && root.dataset.finished === "true")) { schedule(panel); }
      })
      .catch(function () {
        panel.classList.add("poll-error");
        schedule(panel);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll-url]").forEach(function (panel) {
      const root = panel.firstElementChild;
      if (!(root && root.dataset.finished === "true")) { schedule(panel); }
    });
  });
})();
