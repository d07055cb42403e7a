// panva's oidc-provider (the certified Node.js provider) set up for the same benchmark as
// Portcullis: a confidential client `bench-client` with client_credentials, refresh tokens
// (rotated, as Portcullis does) and JWT access tokens signed with BENCH_ALG (ES256 or RS256),
// for client_credentials and for refresh (which also issues an ID token, as Portcullis does).
//
// GET /bench/refresh-token mints a refresh token for the refresh scenario (oidc-provider only
// issues them after an interactive login, which is not what is being measured).
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 3000);
const issuer = `http://127.0.0.1:${port}`;
const secret = process.env.BENCH_CLIENT_SECRET || 'bench-secret';
const alg = process.env.BENCH_ALG || 'ES256';
const key = (alg === 'RS256'
  ? generateKeyPairSync('rsa', { modulusLength: 2048 })
  : generateKeyPairSync('ec', { namedCurve: 'P-256' })
).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench-client',
    client_secret: secret,
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    redirect_uris: ['https://bench.example/callback'],
    response_types: ['code'],
    id_token_signed_response_alg: alg,
    scope: 'openid offline_access api',
  }],
  jwks: { keys: [{ ...key, use: 'sig', alg, kid: 'bench' }] },
  cookies: { keys: ['bench-cookie-key-0123456789abcdef'] },
  scopes: ['openid', 'offline_access', 'api'],
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  rotateRefreshToken: true,
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:bench:api',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        accessTokenFormat: 'jwt',
        accessTokenTTL: 300,
        jwt: { sign: { alg } },
      }),
    },
  },
  ttl: { RefreshToken: 86400, Grant: 86400 },
});
provider.proxy = false;

async function mintRefreshToken() {
  const client = await provider.Client.find('bench-client');
  const grant = new provider.Grant({ accountId: 'bench-user', clientId: 'bench-client' });
  grant.addOIDCScope('openid offline_access');
  grant.addResourceScope('urn:bench:api', 'api');
  const grantId = await grant.save();
  const token = new provider.RefreshToken({
    accountId: 'bench-user',
    client,
    grantId,
    gty: 'authorization_code',
    // Bound to the API resource, so that a refresh issues a JWT access token signed with
    // BENCH_ALG, as Portcullis's refresh does (without it the access token is opaque).
    resource: 'urn:bench:api',
    scope: 'openid offline_access api',
    authTime: Math.floor(Date.now() / 1000),
    rotations: 0,
  });
  return token.save();
}

const callback = provider.callback();
http.createServer(async (req, res) => {
  if (req.url === '/bench/refresh-token') {
    try {
      const value = await mintRefreshToken();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ refresh_token: value }));
    } catch (e) {
      res.writeHead(500);
      res.end(String(e));
    }
    return;
  }
  callback(req, res);
}).listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
