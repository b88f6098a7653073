// pastebin: progressive enhancement of the server-rendered pages. Every page works
// without it; it only shows times in the reader's time zone, copies the text, and
// sends the home page's form as JSON so the answer can be kept by this browser.
"use strict";

// Times: the server writes UTC into <time datetime>; show them in local time.
for (const t of document.querySelectorAll("time[datetime]")) {
  const d = new Date(t.getAttribute("datetime"));
  if (!isNaN(d)) {
    t.title = t.textContent;
    t.textContent = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    t.classList.add("local");
  }
}

// Copy: fetch the raw text (exact bytes, no line numbers) and put it on the clipboard.
// A revealed burn-after-reading paste has no raw text any more: copy it from the page.
const copy = document.getElementById("copy");
if (copy && navigator.clipboard) {
  copy.hidden = false;
  copy.addEventListener("click", async () => {
    try {
      let text;
      if (copy.dataset.raw) {
        const resp = await fetch(copy.dataset.raw);
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        text = await resp.text();
      } else {
        const lines = document.querySelectorAll("#text .l > span");
        text = lines.length
          ? Array.from(lines, (l) => l.textContent).join("\n") + "\n"
          : document.getElementById("text").textContent;
      }
      await navigator.clipboard.writeText(text);
      copy.textContent = "Copied";
    } catch (err) {
      copy.textContent = "Copy failed";
    }
    setTimeout(() => { copy.textContent = "Copy"; }, 2000);
  });
}

// Home page: post JSON, then go to the paste's page. (Without JS the form posts
// itself and the server answers 303 to the same page.)
const form = document.getElementById("new");
if (form) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const out = document.getElementById("out");
    const body = { text: form.elements.text.value };
    const exp = form.elements.expires_in.value;
    if (exp) body.expires_in = Number(exp);
    if (form.elements.burn_after_reading.checked) body.burn_after_reading = true;
    if (form.elements.visibility.checked) body.visibility = "unlisted";
    out.textContent = "";
    try {
      const resp = await fetch(form.action, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(body),
      });
      const data = await resp.json();
      if (!resp.ok) {
        out.textContent = "Error " + resp.status + ": " + data.error;
        return;
      }
      // The delete token is given out this once: kept by this browser only.
      if (data.delete_token) {
        localStorage.setItem("pastebin.delete." + data.paste_id, data.delete_token);
      }
      location.assign(data.url);
    } catch (err) {
      out.textContent = "Could not create the paste: " + err;
    }
  });
}

// Paste page: the browser that created the paste holds its delete token, and only
// there is Delete shown. A first click asks to confirm (no dialog), a second sends
// DELETE with the token; then the paste is gone and the browser goes home.
const del = document.getElementById("delete");
const pasteId = document.body.dataset.paste;
const tokenKey = "pastebin.delete." + pasteId;
if (del && pasteId && localStorage.getItem(tokenKey)) {
  del.hidden = false;
  let armed = false;
  del.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      del.textContent = "Delete for good?";
      del.classList.add("armed");
      return;
    }
    del.disabled = true;
    try {
      const resp = await fetch("/pastes/" + pasteId, {
        method: "DELETE",
        headers: { "Authorization": "Bearer " + localStorage.getItem(tokenKey) },
      });
      // 404: already gone (or the token no longer fits): nothing left to delete.
      if (resp.status === 204 || resp.status === 404) {
        localStorage.removeItem(tokenKey);
        location.assign("/?deleted=" + encodeURIComponent(pasteId));
        return;
      }
      throw new Error("HTTP " + resp.status);
    } catch (err) {
      del.disabled = false;
      del.textContent = "Delete failed: " + err.message;
      armed = false;
    }
  });
}

// Home page after a delete: say so.
const deleted = new URLSearchParams(location.search).get("deleted");
const out = document.getElementById("out");
if (form && out && deleted && /^[0-9A-Za-z]{1,64}$/.test(deleted)) {
  out.className = "done";
  out.textContent = "Paste " + deleted + " was deleted.";
}
