// The console's only script: expiry countdowns, and polling a run's status until it finishes.
"use strict";

function countdowns() {
  for (const el of document.querySelectorAll("[data-expires]")) {
    const left = Math.round((Date.parse(el.dataset.expires) - Date.now()) / 1000);
    el.textContent = left > 0 ? `${Math.floor(left / 60)}m ${String(left % 60).padStart(2, "0")}s` : "expired";
  }
}

async function pollRun(el) {
  const finished = ["completed", "failed", "cancelled"];
  try {
    const response = await fetch(el.dataset.poll, { credentials: "same-origin", cache: "no-store" });
    if (response.ok) {
      const body = await response.json();
      if (body.status !== el.dataset.status) {
        window.location.reload();
        return;
      }
    }
  } catch (e) {
    // The next tick tries again.
  }
  if (!finished.includes(el.dataset.status)) setTimeout(() => pollRun(el), 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  countdowns();
  setInterval(countdowns, 1000);
  for (const el of document.querySelectorAll("[data-poll]")) {
    if (!["completed", "failed", "cancelled"].includes(el.dataset.status)) setTimeout(() => pollRun(el), 1000);
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
