// The one way pages talk to the registry: a GraphQL document and its variables, POSTed to
// /graphql with the caller's token (from this tab's sessionStorage, never a cookie or a URL).

const TOKEN_KEY = "modelyard.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value.trim()),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
    this.code = errors[0]?.extensions?.code || "ERROR";
  }
}

/** Run one document; resolves to {data, errors} as the API answered them. */
export async function run(query, variables = {}) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  const secret = token.get();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  let response;
  try {
    response = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  } catch (e) {
    return { data: null, errors: [{ message: `the registry did not answer (${e.message})`, extensions: { code: "UNAVAILABLE" } }] };
  }
  let body;
  try {
    body = await response.json();
  } catch {
    return { data: null, errors: [{ message: `the registry answered HTTP ${response.status}`, extensions: { code: "UNAVAILABLE" } }] };
  }
  return { data: body.data ?? null, errors: body.errors || [] };
}

/** Run a mutation; resolves to its data or throws ApiError with the API's own messages. */
export async function mutate(query, variables) {
  const { data, errors } = await run(query, variables);
  if (errors.length) throw new ApiError(errors);
  return data;
}

/** GraphiQL with this document and these variables filled in (in the fragment: never sent). */
export function graphiqlHref(query, variables) {
  const params = new URLSearchParams({ query: query.trim(), variables: JSON.stringify(variables, null, 2) });
  return `/graphql#${params}`;
}
