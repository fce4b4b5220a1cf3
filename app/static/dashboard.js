// The dashboard's only script (served from /static: the pages' CSP allows no inline script).
// Confirmations, credentials on request (POST: no secret in a URL), live cards and log tails.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

document.querySelectorAll("form.confirm").forEach((form) => {
  form.addEventListener("submit", (event) => { if (!confirm(form.dataset.question)) event.preventDefault(); });
});

document.querySelectorAll("button.reveal").forEach((button) => {
  button.addEventListener("click", async () => {
    const card = button.closest("[data-preview]");
    const answer = await fetch(`/p/${button.dataset.id}/credentials`, { method: "POST", headers: { "X-CSRF-Token": csrf } });
    const found = await answer.json();
    if (!answer.ok) { alert(found.error || "no credentials"); return; }
    const panel = card.querySelector(".credentials");
    panel.querySelector('[data-field="username"]').textContent = found.username;
    panel.querySelector('[data-field="password"]').textContent = found.password;
    panel.hidden = false;
    panel.querySelector("button.copy").onclick = () => navigator.clipboard.writeText(found.password);
  });
});

async function refreshCards() {
  const live = [...document.querySelectorAll('[data-preview][data-live="yes"]')];
  if (!live.length) return;
  const ids = live.map((card) => card.dataset.preview).join(",");
  const answer = await fetch(`/dashboard/cards.json?ids=${ids}`);
  if (!answer.ok) return;
  const seen = new Set();
  for (const item of (await answer.json()).items) {
    seen.add(String(item.id));
    const card = document.querySelector(`[data-preview="${item.id}"]`);
    const state = card.querySelector('[data-field="state"]');
    state.textContent = item.state.replace("_", " ");
    state.className = `state ${item.state}`;
    card.querySelector('[data-field="progress"]').value = item.progress;
    card.querySelector('[data-field="progress-text"]').textContent = `${item.progress} %`;
    const open = card.querySelector('[data-field="open"]');
    if (item.url) { open.href = item.url; open.hidden = false; }
    const reveal = card.querySelector("button.reveal");
    if (reveal) reveal.hidden = !["ready", "sleeping"].includes(item.state);
    card.dataset.live = item.live ? "yes" : "no";
  }
  live.filter((card) => !seen.has(card.dataset.preview)).forEach((card) => card.remove());
}
setInterval(refreshCards, 2000);

// A preview's page shows its log tails to writers: the element names where to read them.
const logs = document.querySelector("[data-logs-url]");
async function refreshLogs() {
  const answer = await fetch(logs.dataset.logsUrl);
  if (!answer.ok) return;
  const found = await answer.json();
  document.getElementById("build-log").textContent = found.build || "(none)";
  document.getElementById("app-log").textContent = found.app || "(none)";
}
if (logs) { refreshLogs(); setInterval(refreshLogs, 5000); }
