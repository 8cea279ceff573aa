// keyturn approvals page: asks for confirmation before a gate decision, and reloads
// the page every few seconds while a run is live, unless someone is typing a reason.
// The page works without it; no build step.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function editing() {
    var active = document.activeElement;
    if (active && ["INPUT", "TEXTAREA", "SELECT"].indexOf(active.tagName) >= 0) {
      return true;
    }
    var fields = document.querySelectorAll("input[name=reason]");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value) {
        return true;
      }
    }
    return false;
  }

  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (seconds > 0) {
    window.setInterval(function () {
      if (!editing() && document.visibilityState === "visible") {
        window.location.reload();
      }
    }, seconds * 1000);
  }
})();
