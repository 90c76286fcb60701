// Minimal upload form: posts the chosen files and fields to /api/media with the token.
const form = document.getElementById("upload");
const result = document.getElementById("result");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData();
  for (const file of form.file.files) data.append("file", file);
  for (const name of ["title", "tags", "collection"]) {
    if (form[name].value) data.append(name, form[name].value);
  }
  data.append("visibility", form.private.checked ? "private" : "public");
  result.className = "";
  result.textContent = "Uploading…";
  try {
    const res = await fetch("/api/media", {
      method: "POST",
      headers: { Authorization: `Bearer ${form.token.value}` },
      body: data,
    });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error?.message ?? res.statusText);
    result.textContent = body.items.map((m) => `${m.filename}: ${location.origin}${m.url}`).join("\n");
  } catch (err) {
    result.className = "error";
    result.textContent = `Upload failed: ${err.message}`;
  }
});
