//! `portcullis demo`: a demo reseller, company, user and client, so a fresh clone can be
//! tried at once. Fresh credentials are printed on every start (only hashes are stored).

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::{random_token, token_hash};
use crate::model::{Company, Email, NewUser, Reseller, Role, Username};
use crate::password::Passwords;
use crate::startup::open_store;

use super::admin::{new_client, register_client};
use super::{CliError, ClientCreate};

const RESELLER: &str = "demo-reseller";
const COMPANY: &str = "demo-company";
const USER: &str = "demo-user";
const USERNAME: &str = "demo";
const CLIENT: &str = "demo-app";
const REDIRECT_URIS: [&str; 3] = [
    "http://127.0.0.1:9000/callback",
    "http://localhost:9000/callback",
    "https://oidcdebugger.com/debug",
];

pub async fn prepare(config: &Config) -> Result<(), CliError> {
    let store = open_store(config).await.map_err(|e| CliError(format!("{e:#}")))?;
    let now = SystemClock.now();
    if store.get_reseller(RESELLER).await?.is_none() {
        store
            .insert_reseller(&Reseller {
                id: RESELLER.into(),
                name: "Demo Reseller".into(),
                created_at: now,
            })
            .await?;
    }
    if store.get_company(COMPANY).await?.is_none() {
        store
            .insert_company(&Company {
                id: COMPANY.into(),
                reseller_id: RESELLER.into(),
                name: "Demo Company".into(),
                created_at: now,
            })
            .await?;
    }
    let passwords = Passwords::new(&config.password)?;
    let password = random_token()[..16].to_owned();
    let hash = passwords.hash(password.clone()).await?;
    if store.get_user(USER).await?.is_none() {
        let user = NewUser {
            company_id: COMPANY.into(),
            username: Username::parse(USERNAME)?,
            email: Email::parse("demo@example.com")?,
            phone: None,
            name: Some("Demo User".into()),
            role: Role::CompanyAdmin,
        };
        store.insert_user(USER, &user, Some(&hash), now).await?;
    } else {
        store.set_password_hash(USER, &hash, now).await?;
    }
    let secret = random_token();
    if store.get_client(CLIENT).await?.is_none() {
        let create = ClientCreate {
            name: "Demo App".into(),
            redirect_uris: REDIRECT_URIS.iter().map(|s| (*s).to_owned()).collect(),
            post_logout_redirect_uris: vec!["http://127.0.0.1:9000/".into()],
            public: false,
            signing_alg: "RS256".into(),
            grants: vec![],
            scopes: vec![],
            third_party: false,
            allowed_companies: vec![],
            service: false,
            reseller: None,
            company: None,
            instance: false,
        };
        register_client(&store, new_client(&create)?, CLIENT.into(), now).await?;
    }
    store.set_client_secret_hash(CLIENT, &token_hash(&secret)).await?;
    store.close().await;

    let issuer = &config.issuer;
    println!(
        "Portcullis demo\n\
         \n  issuer        {issuer}\
         \n  discovery     {issuer}/.well-known/openid-configuration\
         \n  user          {USERNAME} / {password}\
         \n  client_id     {CLIENT}\
         \n  client_secret {secret}\
         \n  redirect URIs {}\
         \n\nTry it: open\
         \n  {issuer}/authorize?response_type=code&client_id={CLIENT}&scope=openid%20profile%20email&redirect_uri=https%3A%2F%2Foidcdebugger.com%2Fdebug&state=demo&nonce=demo\
         \nsign in, and exchange the code from the redirect:\
         \n  curl -u {CLIENT}:{secret} -d grant_type=authorization_code -d redirect_uri=https://oidcdebugger.com/debug -d code=CODE {issuer}/token\n",
        REDIRECT_URIS.join(", ")
    );
    Ok(())
}
