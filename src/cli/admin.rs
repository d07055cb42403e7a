//! The resource commands: resellers, companies, users, clients, keys.

use std::io::{IsTerminal, Read};

use serde_json::json;

use super::{
    AuditCommand, CliError, ClientCommand, ClientCreate, Command, CompanyCommand, CompanyMfaCommand,
    KeysCommand, ResellerCommand, ResellerMfaCommand, UserCommand, UserCreate, print_json,
};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::random_token;
use crate::model::{
    Client, Company, Email, GrantType, NewClient, NewUser, Phone, RedirectUri, Reseller, ScopeSet,
    SigningAlg, Username, new_id,
};
use crate::password::Passwords;
use crate::policy::admin::{Admin, AdminError};
use crate::policy::{Mode, OptOut, parse_methods};
use crate::startup::{master_key, open_store};
use crate::storage::{AuditFilter, Store};
use crate::templates::Templates;

pub async fn execute(command: Command, config: &Config) -> Result<(), CliError> {
    let store = open_store(config).await.map_err(|e| CliError(format!("{e:#}")))?;
    let now = SystemClock.now();
    let result = match command {
        Command::Reseller(command) => reseller(&store, config, command, now).await,
        Command::Company(command) => company(&store, config, command, now).await,
        Command::User(command) => user(&store, config, command, now).await,
        Command::Client(command) => client(&store, command, now).await,
        Command::Keys(command) => keys(&store, config, command, now).await,
        Command::Audit(command) => audit(&store, command).await,
        Command::Serve | Command::Migrate | Command::Demo | Command::Bench(_) => Ok(()),
    };
    store.close().await;
    result
}

async fn reseller(
    store: &Store,
    config: &Config,
    command: ResellerCommand,
    now: i64,
) -> Result<(), CliError> {
    match command {
        ResellerCommand::Create { name } => {
            let reseller = Reseller {
                id: new_id(),
                name: checked_name(&name, "reseller")?,
                created_at: now,
            };
            store.insert_reseller(&reseller).await?;
            cli_event("reseller.created", &reseller.id, None, Some(&reseller.id))
                .record(store, now)
                .await;
            print_json(&json!(reseller));
        }
        ResellerCommand::List => print_json(&json!(store.list_resellers().await?)),
        ResellerCommand::Enforce {
            reseller,
            company,
            methods,
        } => {
            let methods = methods.as_deref().map(parse_methods).transpose()?;
            let (r, c) = (reseller.clone(), company.clone());
            let detail = json!({ "methods": methods });
            let view = admin(store, config, |a| {
                Box::pin(async move { a.enforce(&reseller, &company, methods, now).await })
            })
            .await?;
            cli_event("enforcement.set", &c, Some(&c), Some(&r))
                .detail(detail)
                .record(store, now)
                .await;
            print_json(&json!(view));
        }
        ResellerCommand::Release { reseller, company } => {
            let (r, c) = (reseller.clone(), company.clone());
            let view = admin(store, config, |a| {
                Box::pin(async move { a.release(&reseller, &company).await })
            })
            .await?;
            cli_event("enforcement.released", &c, Some(&c), Some(&r))
                .record(store, now)
                .await;
            print_json(&json!(view));
        }
        ResellerCommand::Mfa(ResellerMfaCommand::Show { reseller }) => {
            if store.get_reseller(&reseller).await?.is_none() {
                return Err(CliError(format!("reseller {reseller} does not exist")));
            }
            let minimum = store.get_reseller_minimum(&reseller).await?;
            let (mode, methods) = minimum.unwrap_or((Mode::Off, None));
            print_json(&json!({ "reseller_id": reseller, "mode": mode, "methods": methods }));
        }
        ResellerCommand::Mfa(ResellerMfaCommand::Set {
            reseller,
            mode,
            methods,
        }) => {
            let mode: Mode = mode.parse()?;
            let methods = methods.as_deref().map(parse_methods).transpose()?;
            let shown = methods.clone();
            admin(store, config, |a| {
                Box::pin(async move { a.set_minimum(&reseller, mode, methods, now).await })
            })
            .await?;
            print_json(&json!({ "mode": mode, "methods": shown }));
        }
    }
    Ok(())
}

/// Runs an MFA administration operation with the store, the templates and the issuer.
async fn admin<T>(
    store: &Store,
    config: &Config,
    operation: impl for<'a> FnOnce(
        &'a Admin<'a>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<T, AdminError>> + 'a>,
    >,
) -> Result<T, CliError> {
    let templates = Templates::load()?;
    let admin = Admin {
        store,
        templates: &templates,
        issuer: &config.issuer,
    };
    Ok(operation(&admin).await?)
}

fn parse_time(value: &str) -> Result<i64, CliError> {
    crate::clock::parse_rfc3339(value).map_err(|e| {
        CliError(format!(
            "`{value}` is not an RFC 3339 time (like 2027-01-31T00:00:00Z): {e}"
        ))
    })
}

async fn company(store: &Store, config: &Config, command: CompanyCommand, now: i64) -> Result<(), CliError> {
    match command {
        CompanyCommand::Create { reseller, name } => {
            if store.get_reseller(&reseller).await?.is_none() {
                return Err(CliError(format!("reseller {reseller} does not exist")));
            }
            let company = Company {
                id: new_id(),
                reseller_id: reseller,
                name: checked_name(&name, "company")?,
                created_at: now,
            };
            store.insert_company(&company).await?;
            cli_event(
                "company.created",
                &company.id,
                Some(&company.id),
                Some(&company.reseller_id),
            )
            .record(store, now)
            .await;
            print_json(&json!(company));
        }
        CompanyCommand::List { reseller } => {
            print_json(&json!(store.list_companies(reseller.as_deref()).await?))
        }
        CompanyCommand::Mfa(CompanyMfaCommand::Show { company }) => {
            let view = admin(store, config, |a| Box::pin(async move { a.view(&company).await })).await?;
            print_json(&json!(view));
        }
        CompanyCommand::Mfa(CompanyMfaCommand::Set(set)) => {
            let company = set.company.clone();
            let mut policy = store.get_company_policy(&company).await?.unwrap_or_default();
            if let Some(mode) = &set.mode {
                policy.mode = mode.parse()?;
            }
            if let Some(methods) = &set.methods {
                policy.methods = parse_methods(methods)?;
            }
            if let Some(allow_skip) = set.allow_skip {
                policy.allow_skip = allow_skip;
            }
            match set.skip_limit.as_deref() {
                Some("none") => policy.skip_limit = None,
                Some(n) => {
                    policy.skip_limit = Some(
                        n.parse()
                            .map_err(|_| CliError(format!("--skip-limit `{n}` is not a number or `none`")))?,
                    )
                }
                None => {}
            }
            match set.skip_deadline.as_deref() {
                Some("none") => policy.skip_deadline = None,
                Some(at) => policy.skip_deadline = Some(parse_time(at)?),
                None => {}
            }
            if let Some(allow) = set.allow_self_reset {
                policy.allow_self_reset = allow;
            }
            if !set.approvers.is_empty() {
                policy.reset_approvers = set.approvers.clone();
            }
            if let Some(keep) = set.keep_enrollments_when_off {
                policy.keep_enrollments_when_off = keep;
            }
            let detail = json!({ "mode": policy.mode, "methods": policy.methods });
            let id = company.clone();
            let view = admin(store, config, |a| {
                Box::pin(async move { a.save_policy(&company, policy, now).await })
            })
            .await?;
            cli_event("policy.changed", &id, Some(&id), None)
                .detail(detail)
                .record(store, now)
                .await;
            print_json(&json!(view));
        }
    }
    Ok(())
}

/// An audit event for a change made with the command line.
fn cli_event(
    kind: &'static str,
    subject: &str,
    company: Option<&str>,
    reseller: Option<&str>,
) -> crate::audit::Event {
    crate::audit::event(kind, crate::audit::Actor::cli())
        .subject(subject)
        .tenant(company, reseller)
}

fn checked_name(name: &str, what: &str) -> Result<String, CliError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(CliError(format!("the {what} name must be 1 to 200 characters")));
    }
    Ok(name.to_owned())
}

/// Reads a password from standard input: everything up to the end, without the final
/// newline. Interactive terminals get a prompt.
fn read_password() -> Result<String, CliError> {
    let mut input = String::new();
    if std::io::stdin().is_terminal() {
        eprint!("Password (then Enter): ");
        std::io::stdin().read_line(&mut input)?;
    } else {
        std::io::stdin().read_to_string(&mut input)?;
    }
    let password = input.strip_suffix('\n').unwrap_or(&input);
    let password = password.strip_suffix('\r').unwrap_or(password);
    Ok(password.to_owned())
}

async fn user(store: &Store, config: &Config, command: UserCommand, now: i64) -> Result<(), CliError> {
    match command {
        UserCommand::Create(create) => create_user(store, config, create, now).await,
        UserCommand::List { company } => {
            print_json(&json!(store.list_users(company.as_deref()).await?));
            Ok(())
        }
        UserCommand::SetPassword { user } => {
            if store.get_user(&user).await?.is_none() {
                return Err(CliError(format!("user {user} does not exist")));
            }
            let passwords = Passwords::new(&config.password)?;
            let password = read_password()?;
            passwords.check_policy(&password)?;
            let hash = passwords.hash(password).await?;
            store.set_password_hash(&user, &hash, now).await?;
            let company = store.get_user(&user).await?.map(|u| u.company_id);
            cli_event("user.updated", &user, company.as_deref(), None)
                .detail(json!({ "changed": ["password"] }))
                .record(store, now)
                .await;
            print_json(&json!({ "id": user }));
            Ok(())
        }
        UserCommand::MfaOptOut {
            user,
            opt_out,
            reason,
            expires,
        } => {
            let expires_at = expires.as_deref().map(parse_time).transpose()?;
            let value = opt_out.then(|| OptOut {
                reason: reason.clone().unwrap_or_default(),
                expires_at,
            });
            let shown =
                json!({ "id": user, "mfa_opt_out": opt_out, "reason": reason, "expires_at": expires_at });
            let id = user.clone();
            admin(store, config, |a| {
                Box::pin(async move { a.set_opt_out(&user, value, now).await })
            })
            .await?;
            let company = store.get_user(&id).await?.map(|u| u.company_id);
            cli_event(
                if opt_out {
                    "mfa.opt_out.set"
                } else {
                    "mfa.opt_out.cleared"
                },
                &id,
                company.as_deref(),
                None,
            )
            .detail(shown.clone())
            .record(store, now)
            .await;
            print_json(&shown);
            Ok(())
        }
        UserCommand::MfaReset { user } => {
            let id = user.clone();
            admin(store, config, |a| {
                Box::pin(async move { a.reset_user(&user, Some("an administrator"), now).await })
            })
            .await?;
            let company = store.get_user(&id).await?.map(|u| u.company_id);
            cli_event("mfa.reset", &id, company.as_deref(), None)
                .record(store, now)
                .await;
            print_json(&json!({ "id": id, "reset": true }));
            Ok(())
        }
    }
}

async fn create_user(store: &Store, config: &Config, create: UserCreate, now: i64) -> Result<(), CliError> {
    let new = NewUser {
        company_id: create.company.clone(),
        username: Username::parse(&create.username)?,
        email: Email::parse(&create.email)?,
        phone: create.phone.as_deref().map(Phone::parse).transpose()?,
        name: create.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
        role: create.role.parse()?,
    };
    if store.get_company(&new.company_id).await?.is_none() {
        return Err(CliError(format!("company {} does not exist", new.company_id)));
    }
    let passwords = Passwords::new(&config.password)?;
    let password = read_password()?;
    passwords.check_policy(&password)?;
    let hash = passwords.hash(password).await?;
    let user = store.insert_user(&new_id(), &new, Some(&hash), now).await?;
    cli_event("user.created", &user.id, Some(&user.company_id), None)
        .detail(json!({ "username": user.username, "role": user.role.as_str() }))
        .record(store, now)
        .await;
    print_json(&json!(user));
    Ok(())
}

/// Builds a client from the command's flags, applying the defaults.
pub fn new_client(create: &ClientCreate) -> Result<NewClient, CliError> {
    let grant_types = if create.grants.is_empty() && create.service {
        vec![GrantType::ClientCredentials]
    } else if create.grants.is_empty() {
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
    } else {
        let mut grants = Vec::new();
        for grant in &create.grants {
            let grant: GrantType = grant.parse()?;
            if !grants.contains(&grant) {
                grants.push(grant);
            }
        }
        grants
    };
    let scopes = if create.scopes.is_empty() && create.service {
        ScopeSet::parse(crate::api::auth::ADMIN_SCOPE)?
    } else if create.scopes.is_empty() {
        ScopeSet::parse("openid profile email phone")?
    } else {
        ScopeSet::parse(&create.scopes.join(" "))?
    };
    let client = NewClient {
        name: create.name.trim().to_owned(),
        public: create.public,
        first_party: !create.third_party,
        redirect_uris: create
            .redirect_uris
            .iter()
            .map(|u| RedirectUri::parse(u))
            .collect::<Result<_, _>>()?,
        post_logout_redirect_uris: create
            .post_logout_redirect_uris
            .iter()
            .map(|u| RedirectUri::parse(u))
            .collect::<Result<_, _>>()?,
        grant_types,
        scopes,
        id_token_alg: create.signing_alg.parse::<SigningAlg>()?,
        reseller_id: create.reseller.clone(),
        company_id: create.company.clone(),
        allowed_companies: create.allowed_companies.clone(),
    };
    if create.service {
        if create.reseller.is_none() && create.company.is_none() && !create.instance {
            return Err(CliError(
                "a service client acts for --reseller ID or --company ID (or, with --instance, the whole instance)"
                    .into(),
            ));
        }
        if client.public
            || !create.redirect_uris.is_empty()
            || client.grant_types != vec![GrantType::ClientCredentials]
        {
            return Err(CliError(
                "a service client uses only client_credentials: no --public, --redirect-uri or other --grant"
                    .into(),
            ));
        }
    } else if client.scopes.contains(crate::api::auth::ADMIN_SCOPE)
        && client.grant_types.contains(&GrantType::ClientCredentials)
    {
        return Err(CliError(
            "a client that acts for itself with the admin scope is a service client: use --service".into(),
        ));
    }
    client.check()?;
    Ok(client)
}

/// Stores a new client; returns it with its secret (None for public clients).
pub async fn register_client(
    store: &Store,
    new: NewClient,
    id: String,
    now: i64,
) -> Result<(Client, Option<String>), CliError> {
    for company in &new.allowed_companies {
        if store.get_company(company).await?.is_none() {
            return Err(CliError(format!("company {company} does not exist")));
        }
    }
    let (client, secret) = new.into_client(id, now);
    store.insert_client(&client).await?;
    Ok((client, secret))
}

async fn client(store: &Store, command: ClientCommand, now: i64) -> Result<(), CliError> {
    match command {
        ClientCommand::Create(create) => {
            let new = new_client(&create)?;
            let (client, secret) = register_client(store, new, random_token(), now).await?;
            cli_event(
                "client.created",
                &client.id,
                client.company_id.as_deref(),
                client.reseller_id.as_deref(),
            )
            .detail(json!({ "name": client.name, "service": create.service }))
            .record(store, now)
            .await;
            let mut output = json!({ "client_id": client.id });
            if let Some(secret) = secret {
                output["client_secret"] = json!(secret);
            }
            print_json(&output);
        }
        ClientCommand::List => {
            // The provider's own account client is built in, not registered.
            let clients: Vec<Client> = store
                .list_clients()
                .await?
                .into_iter()
                .filter(|c| c.id != crate::http::ACCOUNT_CLIENT_ID)
                .collect();
            print_json(&json!(clients));
        }
    }
    Ok(())
}

async fn audit(store: &Store, command: AuditCommand) -> Result<(), CliError> {
    let AuditCommand::List {
        company,
        reseller,
        user,
        kind,
        since,
        until,
        limit,
    } = command;
    let filter = AuditFilter {
        reseller,
        company,
        subject: user,
        kind,
        since: since.as_deref().map(parse_time).transpose()?,
        until: until.as_deref().map(parse_time).transpose()?,
        after: None,
        limit: limit.clamp(1, 100_000),
    };
    for event in store.list_audit(&filter).await? {
        print_json(&json!(event));
    }
    Ok(())
}

async fn keys(store: &Store, config: &Config, command: KeysCommand, now: i64) -> Result<(), CliError> {
    let describe = |key: &crate::storage::StoredKey| {
        json!({
            "kid": key.kid,
            "alg": key.alg,
            "created_at": key.created_at,
            "retired_at": key.retired_at,
            "status": if key.retired_at.is_none() { "active" } else { "retired" },
        })
    };
    match command {
        KeysCommand::Rotate => {
            let master = master_key(config).map_err(|e| CliError(format!("{e:#}")))?;
            let created = crate::tokens::keys::rotate(store, &master, now).await?;
            print_json(&json!({ "keys": created.iter().map(describe).collect::<Vec<_>>() }));
        }
        KeysCommand::List => {
            let keys = store.all_keys().await?;
            print_json(&json!(keys.iter().map(describe).collect::<Vec<_>>()));
        }
    }
    Ok(())
}
