// Keyboard navigation of the conflict viewer: left/k = previous, right/j = next.
(function () {
  "use strict";
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) return;
    var id = null;
    if (e.key === "ArrowRight" || e.key === "j") id = "next";
    if (e.key === "ArrowLeft" || e.key === "k") id = "prev";
    var a = id && document.getElementById(id);
    if (a) {
      e.preventDefault();
      window.location.href = a.getAttribute("href");
    }
  });
})();
