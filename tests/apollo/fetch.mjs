// A stock Apollo Client with its persisted-queries link, run by tests/test_apollo_client.py
// against the live server: nothing here speaks the APQ protocol itself, the link does.
//
//   CAREGRAPH_TOKEN=<access token> node fetch.mjs --url http://127.0.0.1:PORT/graphql \
//     --query 'query Q($first: Int!) { ... }' --variables '{"first": 5}' [--get]
//
// Runs the query twice with one client (the second time network-only, so it goes to the
// server again) and prints {"useGETForHashedQueries", "results": [data, data]} as JSON.
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";

import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
// Apollo Client 4's name for the link; createPersistedQueryLink(options) is its deprecated alias.
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    query: { type: "string" },
    variables: { type: "string", default: "{}" },
    get: { type: "boolean", default: false },
  },
});
const token = process.env.CAREGRAPH_TOKEN;
if (!args.url || !args.query || !token) {
  console.error("usage: CAREGRAPH_TOKEN=... node fetch.mjs --url URL --query QUERY [--variables JSON] [--get]");
  process.exit(2);
}

// The link's documented `sha256` option, with Node's own SHA-256.
const sha256 = (text) => createHash("sha256").update(text).digest("hex");

const client = new ApolloClient({
  cache: new InMemoryCache(),
  link: new PersistedQueryLink({ sha256, useGETForHashedQueries: args.get }).concat(
    new HttpLink({
      uri: args.url,
      fetch: globalThis.fetch,
      headers: { authorization: `Bearer ${token}` },
    }),
  ),
});

const query = gql(args.query);
const variables = JSON.parse(args.variables);
const results = [];
for (const fetchPolicy of ["cache-first", "network-only"]) {
  const { data } = await client.query({ query, variables, fetchPolicy });
  results.push(data);
}
process.stdout.write(JSON.stringify({ useGETForHashedQueries: args.get, results }) + "\n");
