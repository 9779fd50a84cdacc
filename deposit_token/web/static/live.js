// The console's live payments: a table body with data-live="<url>" receives server-sent events
// (event "payment", JSON) and shows each new payment on top. Text only (textContent): nothing from the
// database is ever parsed as HTML.
(function () {
  "use strict";
  const COLUMNS = ["time", "department", "program", "vendor", "category", "amount"];
  const KEEP = 50;

  function start() {
    document.querySelectorAll("[data-live]").forEach((body) => {
      const status = document.querySelector("[data-live-status]");
      const source = new EventSource(body.dataset.live);
      source.addEventListener("open", () => {
        if (status) status.textContent = "●";
        body.dataset.liveConnected = "true";
      });
      source.addEventListener("error", () => {
        if (status) status.textContent = "○";
      });
      source.addEventListener("payment", (event) => {
        const payment = JSON.parse(event.data);
        const row = document.createElement("tr");
        row.className = "fresh";
        row.dataset.id = payment.id;
        COLUMNS.forEach((key) => {
          const cell = document.createElement("td");
          cell.textContent = payment[key];
          if (key === "amount") cell.className = "num";
          row.appendChild(cell);
        });
        body.prepend(row);
        while (body.rows.length > KEEP) body.deleteRow(-1);
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
