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
const copy = document.getElementById("copy");
if (copy && navigator.clipboard) {
  copy.hidden = false;
  copy.addEventListener("click", async () => {
    try {
      const resp = await fetch(copy.dataset.raw);
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      await navigator.clipboard.writeText(await resp.text());
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
    // Slot (issue 9): burn_after_reading and unlisted checkboxes go into `body` here.
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
      // Slot (issue 9): keep the delete token for this paste in this browser only.
      if (data.delete_token) {
        localStorage.setItem("pastebin.delete." + data.paste_id, data.delete_token);
      }
      location.assign(data.url);
    } catch (err) {
      out.textContent = "Could not create the paste: " + err;
    }
  });
}

// Slot (issue 9): on a paste page, show #delete when localStorage holds a delete
// token for document.body.dataset.paste, and send DELETE with it on click.
