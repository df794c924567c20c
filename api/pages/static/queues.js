// Refreshes the queue panel every 30 s, unless the coordinator is in the middle of something:
// a menu open (an outcome or a snooze being filled in) or rows selected for a bulk claim.
// htmx listens for the "queue-refresh" event on the panel (hx-trigger), so no script is inline.
(function () {
  setInterval(function () {
    var panel = document.getElementById("queue-panel");
    if (!panel || !window.htmx) {
      return;
    }
    var busy = panel.querySelector("details[open]") ||
      panel.querySelector('input[type="checkbox"][form="bulk-claim"]:checked');
    if (!busy) {
      window.htmx.trigger(panel, "queue-refresh");
    }
  }, 30000);
})();
