// The landing pages of the links in the platform's emails. The one-time token is in the
// URL fragment, which the browser never sends to a server; it is read here, removed from the
// address bar and history, and posted to the API.
"use strict";
(function () {
  const token = new URLSearchParams(window.location.hash.slice(1)).get("token") || "";
  history.replaceState(null, "", window.location.pathname);
  const status = document.getElementById("status");
  function show(outcome, text) {
    status.dataset.outcome = outcome;
    status.textContent = text;
  }
  async function post(path, body) {
    const response = await fetch("/api/v1/auth/" + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    const reply = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = reply.error || {};
      const field = (error.details || []).map((d) => d.message || d.description).filter(Boolean);
      throw new Error(field.length ? field.join("; ") : error.message || "request failed");
    }
    return reply;
  }
  if (!token) {
    show("error", "This link is incomplete. Open the link from the email again.");
    return;
  }
  const page = document.body.dataset.page;
  if (page === "verify-email") {
    post("verify-email", { token })
      .then(() => show("ok", "Your email address is verified. You can sign in now."))
      .catch((e) => show("error", "Not verified: " + e.message));
  } else if (page === "reset-password") {
    const form = document.getElementById("reset");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const password = document.getElementById("password").value;
      post("reset-password", { token, new_password: password })
        .then(() => {
          form.remove();
          show("ok", "Your password is changed and every session was signed out. Sign in with the new one.");
        })
        .catch((e) => show("error", "Not changed: " + e.message));
    });
  }
})();
