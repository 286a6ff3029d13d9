// Every URL of the UI, built from names and refs by one set of functions (and read back by
// `route`), so a name with a namespace or odd characters always makes a working link.

const enc = (name) => name.split("/").map(encodeURIComponent).join("/");

export const paths = {
  home: (params) => (params && String(params) ? `/?${params}` : "/"),
  model: (name) => `/models/${enc(name)}`,
  version: (name, number) => `/models/${enc(name)}/versions/${number}`,
  lineage: (name, number, params) => `/models/${enc(name)}/versions/${number}/lineage${params ? `?${params}` : ""}`,
  compare: (a, b) => `/compare?${new URLSearchParams({ a: a || "", b: b || "" })}`,
  audit: (params) => `/audit${params && String(params) ? `?${params}` : ""}`,
  /** The page of a version ref (`name:3`) or a dataset ref (versions trained on it). */
  ref(ref) {
    const m = /^(.+):(\d+)$/.exec(ref);
    if (m) return this.version(m[1], m[2]);
    return this.home(new URLSearchParams({ c: `trainedOn=${ref}` }));
  },
};

/** Which page a location shows: {page, ...params}. */
export function route(location) {
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(location.search);
  if (!parts.length) return { page: "home", query };
  if (parts[0] === "compare" && parts.length === 1) return { page: "compare", query };
  if (parts[0] === "audit" && parts.length === 1) return { page: "audit", query };
  if (parts[0] === "models" && parts.length > 1) {
    const at = parts.indexOf("versions");
    const nameParts = at < 0 ? parts.slice(1) : parts.slice(1, at);
    const name = nameParts.join("/");
    if (at < 0 && nameParts.length <= 2) return { page: "model", name, query };
    const number = parts[at + 1];
    const rest = parts.slice(at + 2);
    if (nameParts.length <= 2 && /^\d+$/.test(number || "")) {
      if (!rest.length) return { page: "version", name, number: Number(number), query };
      if (rest.length === 1 && rest[0] === "lineage") return { page: "lineage", name, number: Number(number), query };
    }
  }
  return { page: "missing", query, path: location.pathname };
}
