// A real OpenID Connect provider (the `oidc-provider` package) for the console's sign-in
// test: one public client that must use PKCE, a login form that takes any name, a consent
// page, and JWT access tokens for keyward carrying the tenant claim.
//
//   node provider.mjs <port> <console redirect URI>
// prints "ready" once listening.

import Provider from "oidc-provider";

const [port, redirectUri] = process.argv.slice(2);
const resource = "urn:keyward";
const scopes = "tenant.apiKey:read tenant.apiKey:write";

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: "keyward-console",
      token_endpoint_auth_method: "none",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
    },
  ],
  scopes: ["openid", ...scopes.split(" ")],
  findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  extraTokenClaims: () => ({ tenant_id: "acme" }),
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: scopes,
        audience: resource,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "RS256" } },
      }),
    },
  },
});

provider.listen(Number(port), "127.0.0.1", () => console.log("ready"));
