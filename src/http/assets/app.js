// isc-ledger console: live runout countdowns, measured against the
// server's clock (body[data-now]) so a manual-clock server counts right.
(function () {
  "use strict";
  var serverNow = Number(document.body.getAttribute("data-now")) || 0;
  var loadedAt = Date.now() / 1000;
  function fmt(s) {
    if (s <= 0) { return "ran out"; }
    var out = [], units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
    for (var i = 0; i < units.length; i++) {
      if (s >= units[i][1]) { out.push(Math.floor(s / units[i][1]) + units[i][0]); s %= units[i][1]; }
    }
    return out.join(" ");
  }
  function tick() {
    if (!serverNow) { return; }
    var now = serverNow + Math.floor(Date.now() / 1000 - loadedAt);
    var els = document.querySelectorAll(".countdown[data-runout]");
    for (var i = 0; i < els.length; i++) {
      els[i].textContent = fmt(Number(els[i].getAttribute("data-runout")) - now);
    }
  }
  tick();
  setInterval(tick, 1000);
})();
