// Customer cabinet: the balance refreshes itself (every data-refresh-seconds, 30 by default)
// without reloading the page, so a payment made through Payme or Click shows up by itself.
// Served from /static: the pages' Content-Security-Policy runs no inline script.
// The server formats the amount (balance_som) and the page carries the three headings in the
// visitor's language (data-debt, data-credit, data-zero), so nothing here knows money or words.
(function () {
  "use strict";
  var amount = document.getElementById("balance");
  if (!amount || !amount.dataset.refreshUrl) {
    return;
  }
  var heading = document.getElementById("balance-heading");
  var box = amount.closest(".balance");
  var every = (Number(amount.dataset.refreshSeconds) || 30) * 1000;

  function show(data) {
    if (!data || typeof data.balance_tiyin !== "number" || typeof data.balance_som !== "string") {
      return;
    }
    var tiyin = data.balance_tiyin;
    amount.dataset.tiyin = String(tiyin);
    amount.textContent = data.balance_som;
    if (box) {
      box.classList.toggle("debt", tiyin > 0);
      box.classList.toggle("credit", tiyin <= 0);
    }
    if (heading) {
      var word = tiyin > 0 ? heading.dataset.debt : tiyin < 0 ? heading.dataset.credit : heading.dataset.zero;
      if (word) {
        heading.textContent = word;
      }
    }
  }

  function refresh() {
    fetch(amount.dataset.refreshUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (r) {
        return r.ok ? r.json() : null;
      })
      .then(show)
      .catch(function () {
        // offline or the session ended: keep the last figure, try again next time
      });
  }

  setInterval(refresh, every);
})();
