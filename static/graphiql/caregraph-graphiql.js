// CareGraph's GraphiQL page: an access-token box, a sign-in form, and GraphiQL with its
// schema built from SDL. Loaded as a file because the page's CSP allows no inline script;
// the server passes its settings in data- attributes on #graphiql.
(function () {
  "use strict";

  const root = document.getElementById("graphiql");
  const config = root.dataset;
  const tokenInput = document.getElementById("access-token");
  const signInForm = document.getElementById("sign-in");
  const signInStatus = document.getElementById("sign-in-status");
  const schemaStatus = document.getElementById("schema-status");
  const TOKEN_KEY = "caregraph:access-token";
  // "public": the SDL is served to anyone (introspection on). "token": only to a signed-in
  // caller allowed free-form queries, so ask for it only with a token.
  const SCHEMA_NEEDS_TOKEN = config.schemaAccess === "token";

  // Tokens are short-lived (15 minutes): keep one for this tab only, so a reload does
  // not sign the analyst out but closing the tab does.
  tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || "";
  let tokenTimer = null;
  tokenInput.addEventListener("input", function () {
    sessionStorage.setItem(TOKEN_KEY, tokenInput.value.trim());
    // A new token may get the schema (or no longer): ask again once typing stops.
    if (SCHEMA_NEEDS_TOKEN) {
      clearTimeout(tokenTimer);
      tokenTimer = setTimeout(refreshSchema, 400);
    }
  });

  function setToken(token) {
    tokenInput.value = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    if (SCHEMA_NEEDS_TOKEN) {
      clearTimeout(tokenTimer);
      refreshSchema();
    }
  }

  // Every request GraphiQL sends: the headers from its own Headers editor, plus the token
  // box's token, which wins over an Authorization header typed there (the box is what
  // the sign-in form fills, so it holds the newest token).
  async function postGraphQL(body, editorHeaders) {
    const headers = {
      "Content-Type": "application/json",
      Accept: "application/graphql-response+json, application/json",
      ...(editorHeaders || {}),
    };
    const token = tokenInput.value.trim();
    if (token) {
      headers.Authorization = "Bearer " + token;
    }
    const response = await fetch(config.graphqlUrl, {
      method: "POST",
      headers: headers,
      body: JSON.stringify(body),
    });
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch (error) {
      return { errors: [{ message: "HTTP " + response.status + ": " + text.slice(0, 200) }] };
    }
  }

  function fetcher(params, options) {
    return postGraphQL(params, options && options.headers);
  }

  // Sign in with the trusted Login document (by id when the server has a manifest, else
  // its text) and put the access token in the token box.
  signInForm.addEventListener("submit", async function (event) {
    event.preventDefault();
    const form = new FormData(signInForm);
    const code = String(form.get("code") || "").trim();
    const variables = {
      email: String(form.get("email")),
      password: String(form.get("password")),
      // Authenticator codes are six digits; recovery codes look like 1a2b3c4d-5e6f7a8b.
      totpCode: /^\d{6}$/.test(code) ? code : null,
      recoveryCode: code && !/^\d{6}$/.test(code) ? code : null,
    };
    const body = config.loginDocumentId
      ? { documentId: config.loginDocumentId, variables: variables }
      : { query: config.loginDocument, variables: variables };
    signInStatus.textContent = "Signing in…";
    try {
      const result = await postGraphQL(body, {});
      const login = result.data && result.data.login;
      if (login && login.__typename === "AuthPayload") {
        setToken(login.accessToken);
        signInStatus.textContent = "Signed in as " + login.user.email + " (" + login.user.role + ")";
        signInForm.elements.password.value = "";
        signInForm.elements.code.value = "";
      } else if (login && login.__typename === "MfaRequired") {
        signInStatus.textContent = login.message;
      } else {
        const errors = result.errors || [{ message: "Sign-in failed" }];
        signInStatus.textContent = errors.map((e) => e.message).join("; ");
      }
    } catch (error) {
      signInStatus.textContent = "Sign-in failed: " + error.message;
    }
  });

  // GraphiQL gets the schema from SDL, built with the graphql-js inside its own bundle
  // (GraphiQL.GraphQL), so its autocomplete and docs work with introspection off.
  // `null` (not undefined) when the SDL cannot be had: GraphiQL then does not introspect,
  // and queries still run. Where the SDL needs a token, none means no request at all.
  async function loadSchema() {
    const token = tokenInput.value.trim();
    if (SCHEMA_NEEDS_TOKEN && !token) {
      return { schema: null, hint: "Sign in to load the schema" };
    }
    try {
      const response = await fetch(config.schemaUrl, {
        headers: token ? { Authorization: "Bearer " + token } : {},
      });
      if (response.status === 401) {
        return { schema: null, hint: "Sign in to load the schema" };
      }
      if (response.status === 403) {
        return { schema: null, hint: "No schema for this role (persisted queries only)" };
      }
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return { schema: GraphiQL.GraphQL.buildSchema(await response.text()), hint: "" };
    } catch (error) {
      console.error("CareGraph: could not load the schema SDL", error);
      return { schema: null, hint: "Could not load the schema" };
    }
  }

  // GraphiQL's dialogs insert a <style> element (react-remove-scroll); the bundle tags
  // it with this global, so the page's CSP can allow it by nonce instead of all inline CSS.
  window.__webpack_nonce__ = config.styleNonce;

  const reactRoot = ReactDOM.createRoot(root);
  let schemaRequest = 0;

  // Render GraphiQL with whatever schema the current token gets. The same element type
  // with a new `schema` prop: GraphiQL keeps its editors and swaps the schema. Only the
  // newest request renders, so an answer that arrives late cannot undo a newer one.
  async function refreshSchema() {
    const request = ++schemaRequest;
    const loaded = await loadSchema();
    if (request !== schemaRequest) {
      return;
    }
    schemaStatus.textContent = loaded.hint;
    reactRoot.render(
      React.createElement(GraphiQL, {
        fetcher: fetcher,
        schema: loaded.schema,
        defaultEditorToolsVisibility: true,
        defaultQuery: "# Sign in above (or paste a token), then run:\n{\n  me {\n    email\n    role\n  }\n}\n",
      })
    );
  }

  refreshSchema();
})();
