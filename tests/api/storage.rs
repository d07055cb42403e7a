//! Contract tests of the store, run on whichever backend the suite runs on: both
//! backends must answer alike, including for constraint violations.

use portcullis::model::{
    Client, Company, Email, GrantType, NewUser, Reseller, Role, ScopeSet, SigningAlg, Username,
};
use portcullis::storage::{
    Advance, AuditEvent, AuditFilter, Checkpoints, CodeExchange, Completion, Grant, LoginFacts, LoginUser,
    NewCode, PG_REFRESH_BATCH, PURGE_STATEMENTS, RefreshOutcome, Refreshed, Session, SessionWrite, Store,
    StoreError, StoredLogin,
};
use tempfile::TempDir;

use crate::helpers::{PgDatabase, fresh_database};

struct Db {
    store: Store,
    url: String,
    _dir: TempDir,
    _database: Option<PgDatabase>,
}

async fn db() -> Db {
    db_with(Checkpoints::OnCommit).await
}

async fn db_with(checkpoints: Checkpoints) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let (url, database) = fresh_database(&dir).await;
    let store = Store::connect_with(&url, 4, checkpoints).await.unwrap();
    store.migrate().await.unwrap();
    Db {
        store,
        url,
        _dir: dir,
        _database: database,
    }
}

async fn tenant(store: &Store) -> (Reseller, Company) {
    let reseller = Reseller {
        id: "r1".into(),
        name: "R".into(),
        created_at: 1,
    };
    store.insert_reseller(&reseller).await.unwrap();
    let company = Company {
        id: "c1".into(),
        reseller_id: "r1".into(),
        name: "C".into(),
        created_at: 1,
    };
    store.insert_company(&company).await.unwrap();
    (reseller, company)
}

fn new_user(company: &str, name: &str) -> NewUser {
    NewUser {
        company_id: company.into(),
        username: Username::parse(name).unwrap(),
        email: Email::parse("x@example.com").unwrap(),
        phone: None,
        name: None,
        role: Role::User,
    }
}

fn client(id: &str) -> Client {
    Client {
        id: id.into(),
        name: "App".into(),
        secret_hash: Some("hash".into()),
        public: false,
        first_party: true,
        redirect_uris: vec!["https://a.example.com/cb".into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: ScopeSet::parse("openid email").unwrap(),
        id_token_alg: SigningAlg::ES256,
        reseller_id: None,
        company_id: None,
        allowed_companies: vec!["c1".into()],
        created_at: 5,
    }
}

fn grant(id: &str, client_id: &str) -> Grant {
    Grant {
        id: id.into(),
        client_id: client_id.into(),
        user_id: "u1".into(),
        session_id: "s1".into(),
        scope: "openid".into(),
        auth_time: 100,
        amr: "[\"pwd\"]".into(),
        acr: "urn:portcullis:acr:pwd".into(),
        created_at: 100,
        expires_at: 10_000,
        revoked_at: None,
        skipped: false,
    }
}

/// A tenant, user u1, clients a and b.
async fn seeded() -> Db {
    seeded_with(Checkpoints::OnCommit).await
}

async fn seeded_with(checkpoints: Checkpoints) -> Db {
    let db = db_with(checkpoints).await;
    tenant(&db.store).await;
    db.store
        .insert_user("u1", &new_user("c1", "alice"), Some("h"), 1)
        .await
        .unwrap();
    db.store.insert_client(&client("a")).await.unwrap();
    db.store.insert_client(&client("b")).await.unwrap();
    db
}

/// [`seeded`], with a confirmed TOTP factor `f1` for user u1.
async fn seeded_with_a_confirmed_totp_factor() -> Db {
    let db = seeded().await;
    db.store.insert_pending_factor(&totp_factor("f1")).await.unwrap();
    db.store
        .confirm_factor(&totp_factor("f1"), Some(1), None, &[], 15)
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn login_names_are_unique_regardless_of_case() {
    let db = db().await;
    tenant(&db.store).await;
    db.store
        .insert_user("u1", &new_user("c1", "alice"), None, 1)
        .await
        .unwrap();
    let error = db
        .store
        .insert_user("u2", &new_user("c1", "ALICE"), None, 1)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let typed = Username::parse("Alice").unwrap();
    let facts = db
        .store
        .login_facts("no-login", by_name(Some(typed.as_str()), "k", None))
        .await
        .unwrap();
    let (found, ..) = facts.user.unwrap();
    assert_eq!(found.user.id, "u1");
    assert_eq!(found.reseller_id, "r1");
}

fn by_name<'a>(name: Option<&'a str>, first: &'a str, second: Option<&'a str>) -> LoginUser<'a> {
    LoginUser::Name { name, first, second }
}

#[tokio::test]
async fn login_facts_read_the_login_the_user_their_policy_inputs_and_the_counters_at_once() {
    let db = seeded_with_a_confirmed_totp_factor().await;
    let never = |_: i64| None;
    db.store.record_failure("account", 100, 900, never).await.unwrap();
    db.store.record_failure("account", 110, 900, never).await.unwrap();
    db.store.record_failure("address", 100, 900, never).await.unwrap();
    db.store
        .record_failure("mfa:user:u1", 120, 900, never)
        .await
        .unwrap();
    let (policy, factors) = db.store.policy_inputs("u1", "c1").await.unwrap().unwrap();
    let user = db.store.get_user_with_tenancy("u1").await.unwrap().unwrap();
    let at_password = stored_login("l1");
    db.store.insert_login(&at_password).await.unwrap();
    let at_challenge = StoredLogin {
        user_id: Some("u1".into()),
        ..stored_login("l2")
    };
    db.store.insert_login(&at_challenge).await.unwrap();
    let no_user_yet = stored_login("l3");
    db.store.insert_login(&no_user_yet).await.unwrap();
    let counts = |facts: &LoginFacts| {
        let mut counts: Vec<_> = facts
            .throttles
            .iter()
            .map(|t| (t.key.clone(), t.failures, t.window_start))
            .collect();
        counts.sort();
        counts
    };
    let of_login = LoginUser::OfLogin {
        key_prefix: "mfa:user:",
    };

    let named = db
        .store
        .login_facts("l1", by_name(Some("alice"), "account", Some("address")))
        .await
        .unwrap();
    assert_eq!(named.login, Some(at_password));
    assert_eq!(
        counts(&named),
        [("account".into(), 2, 100), ("address".into(), 1, 100)]
    );
    let (found, context, found_factors) = named.user.unwrap();
    assert_eq!(found.user, user.user);
    assert_eq!(found.password_hash.as_deref(), Some("h"));
    assert_eq!(
        (&context.company, &context.reseller, &context.mfa),
        (&policy.company, &policy.reseller, &policy.mfa)
    );
    assert_eq!(found_factors, factors);
    assert_eq!(found_factors.len(), 1);

    // At the challenge: the user the login names, and the counter of their wrong codes.
    let challenged = db.store.login_facts("l2", of_login).await.unwrap();
    assert_eq!(challenged.login, Some(at_challenge));
    assert_eq!(counts(&challenged), [("mfa:user:u1".into(), 1, 120)]);
    assert_eq!(challenged.user.unwrap().2, factors);

    // A login that names no user yet, and no such login: no user and no counters.
    let early = db.store.login_facts("l3", of_login).await.unwrap();
    assert_eq!(early.login, Some(no_user_yet));
    assert!(early.user.is_none() && early.throttles.is_empty());
    let nothing = db.store.login_facts("l9", of_login).await.unwrap();
    assert!(nothing.login.is_none() && nothing.user.is_none() && nothing.throttles.is_empty());

    // No such login: the user and the counters all the same (the step refuses the form).
    let unknown = db
        .store
        .login_facts("l9", by_name(Some("alice"), "account", None))
        .await
        .unwrap();
    assert!(unknown.login.is_none());
    assert_eq!(counts(&unknown), [("account".into(), 2, 100)]);
    assert_eq!(unknown.user.unwrap().0.user, user.user);

    // No such user, or no valid name: the counters all the same.
    for name in [Some("bob"), None] {
        let facts = db
            .store
            .login_facts("l1", by_name(name, "account", Some("account")))
            .await
            .unwrap();
        assert!(facts.user.is_none());
        assert!(facts.login.is_some());
        assert_eq!(
            counts(&facts),
            [("account".into(), 2, 100)],
            "one counter per key"
        );
    }
}

#[tokio::test]
async fn references_to_missing_rows_are_refused_by_name() {
    let db = db().await;
    let error = db
        .store
        .insert_user("u1", &new_user("nope", "alice"), None, 1)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Missing("company")), "{error:?}");
    let error = db
        .store
        .insert_company(&Company {
            id: "c".into(),
            reseller_id: "nope".into(),
            name: "C".into(),
            created_at: 1,
        })
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Missing("reseller")), "{error:?}");
    // A client restricted to a missing company is not stored at all.
    let error = db.store.insert_client(&client("a")).await.unwrap_err();
    assert!(matches!(error, StoreError::Missing(_)), "{error:?}");
    assert!(
        db.store.get_client("a").await.unwrap().is_none(),
        "one transaction"
    );
}

#[tokio::test]
async fn clients_round_trip_every_field() {
    let db = db().await;
    tenant(&db.store).await;
    db.store.insert_client(&client("a")).await.unwrap();
    assert_eq!(db.store.get_client("a").await.unwrap().unwrap(), client("a"));
    let listed: Vec<Client> = db.store.list_clients().await.unwrap();
    // Migration 0002 registers the account pages' built-in client.
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["a", "portcullis-account"]);
    assert_eq!(listed[0], client("a"));
    assert!(db.store.set_client_secret_hash("a", "new").await.unwrap());
    assert_eq!(
        db.store
            .get_client("a")
            .await
            .unwrap()
            .unwrap()
            .secret_hash
            .as_deref(),
        Some("new")
    );
}

fn stored_login(id: &str) -> StoredLogin {
    StoredLogin {
        id: id.into(),
        browser_hash: "b".into(),
        csrf_token: "t".into(),
        client_id: "a".into(),
        request: "{}".into(),
        state: "{\"step\":\"password\"}".into(),
        user_id: None,
        version: 0,
        created_at: 1,
        expires_at: 100,
    }
}

fn to_refused(id: &str, expected_version: i64) -> Advance<'_> {
    Advance {
        id,
        expected_version,
        state: "{\"step\":\"refused\"}",
        user_id: Some("u1"),
    }
}

#[tokio::test]
async fn a_login_advances_once_per_version() {
    let db = seeded().await;
    db.store.insert_login(&stored_login("l1")).await.unwrap();
    assert!(db.store.advance_login(&to_refused("l1", 0)).await.unwrap());
    assert!(!db.store.advance_login(&to_refused("l1", 0)).await.unwrap());
    let stored = db.store.get_login("l1").await.unwrap().unwrap();
    assert_eq!((stored.version, stored.user_id.as_deref()), (1, Some("u1")));
}

fn session(id: &str, secret_hash: &str) -> Session {
    Session {
        id: id.into(),
        secret_hash: secret_hash.into(),
        user_id: "u1".into(),
        auth_time: 100,
        amr: "[\"pwd\"]".into(),
        acr: "urn:portcullis:acr:pwd".into(),
        created_at: 100,
        expires_at: 1_000,
        ended_at: None,
        mfa_verified_at: None,
    }
}

fn login_succeeded(id: &str) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        at: 150,
        kind: "login.succeeded".into(),
        outcome: "success".into(),
        actor: Some("u1".into()),
        actor_kind: "user".into(),
        subject: Some("u1".into()),
        company_id: Some("c1".into()),
        reseller_id: Some("r1".into()),
        client_ip: None,
        detail: "{}".into(),
    }
}

/// Login `id`'s move from version 0 to its end: session `new` started (replacing none),
/// `event` filed and `issued` written.
fn first_login_ends<'a>(
    id: &'a str,
    new: &'a Session,
    event: &'a AuditEvent,
    issued: &'a NewCode,
) -> Completion<'a> {
    Completion {
        login: Some(to_refused(id, 0)),
        session: SessionWrite::Start {
            session: new,
            replaces: None,
        },
        audit: event,
        code: Some(issued),
        now: 150,
    }
}

#[tokio::test]
async fn a_completed_login_writes_its_state_session_event_and_code_at_once() {
    let db = seeded().await;
    db.store.insert_login(&stored_login("l1")).await.unwrap();
    let (new, event) = (session("s2", "secret2"), login_succeeded("e1"));
    let mut issued = code("c");
    issued.session_id = "s2".into();
    let completion = first_login_ends("l1", &new, &event, &issued);
    assert!(db.store.complete_login(&completion).await.unwrap());
    assert_eq!(db.store.get_login("l1").await.unwrap().unwrap().version, 1);
    assert_eq!(db.store.get_session("s2").await.unwrap().as_ref(), Some(&new));
    assert!(db.store.get_code("c").await.unwrap().is_some());
    let events = db.store.list_audit(&audit_filter()).await.unwrap();
    assert_eq!(events, std::slice::from_ref(&event));
    // The same completion again finds the login moved on: nothing at all is written.
    let (other, again) = (session("s3", "secret3"), login_succeeded("e2"));
    let replay = Completion {
        session: SessionWrite::Start {
            session: &other,
            replaces: None,
        },
        audit: &again,
        code: Some(&code("c2")),
        ..completion
    };
    assert!(!db.store.complete_login(&replay).await.unwrap());
    assert_eq!(db.store.get_session("s3").await.unwrap(), None);
    assert!(db.store.get_code("c2").await.unwrap().is_none());
    assert_eq!(db.store.list_audit(&audit_filter()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_completed_login_that_cannot_be_stored_writes_nothing() {
    let db = seeded().await;
    db.store.insert_login(&stored_login("l1")).await.unwrap();
    // The code's hash is taken: the session, the event and the login's move must not stay.
    db.store.insert_session(&session("s1", "secret1")).await.unwrap();
    db.store.insert_code(&code("c")).await.unwrap();
    let (new, event) = (session("s2", "secret2"), login_succeeded("e1"));
    let mut issued = code("c");
    issued.session_id = "s2".into();
    let completion = first_login_ends("l1", &new, &event, &issued);
    assert!(db.store.complete_login(&completion).await.is_err());
    assert_eq!(db.store.get_login("l1").await.unwrap().unwrap().version, 0);
    assert_eq!(db.store.get_session("s2").await.unwrap(), None);
    assert!(db.store.list_audit(&audit_filter()).await.unwrap().is_empty());
    // Nothing is left open either: the same login completes with a fresh code.
    let mut fresh = code("c2");
    fresh.session_id = "s2".into();
    let retry = Completion {
        code: Some(&fresh),
        ..completion
    };
    assert!(db.store.complete_login(&retry).await.unwrap());
    assert_eq!(db.store.get_login("l1").await.unwrap().unwrap().version, 1);
    assert!(db.store.get_code("c2").await.unwrap().is_some());
}

#[tokio::test]
async fn a_completed_login_dropped_midway_is_written_exactly_once() {
    // The request that completes a login can go away at any moment (the browser closed).
    // The same completion sent again then either finds the login done or does it, without an
    // error, and afterwards everything is written exactly once. On SQLite the writes are one
    // script of statements, which sqlx would stop halfway if it ran in the request's own
    // future: the writer would stay inside the transaction and the second completion fail.
    // (On PostgreSQL the dropped statement may still be running when the second one starts;
    // the login's row lock orders them.)
    let db = seeded().await;
    for (n, micros) in [0_u64, 10, 30, 60, 100, 200, 400, 800, 1_600, 3_200]
        .into_iter()
        .enumerate()
    {
        let id = format!("l{n}");
        db.store.insert_login(&stored_login(&id)).await.unwrap();
        let (new, event) = (
            session(&format!("s{n}"), &format!("h{n}")),
            login_succeeded(&format!("e{n}")),
        );
        let mut issued = code(&format!("c{n}"));
        issued.session_id = new.id.clone();
        let completion = first_login_ends(&id, &new, &event, &issued);
        let dropped = std::time::Duration::from_micros(micros);
        let _ = tokio::time::timeout(dropped, db.store.complete_login(&completion)).await;
        db.store.complete_login(&completion).await.unwrap();
        assert_eq!(db.store.get_login(&id).await.unwrap().unwrap().version, 1);
        assert_eq!(db.store.get_session(&new.id).await.unwrap().as_ref(), Some(&new));
        assert!(db.store.get_code(&issued.code_hash).await.unwrap().is_some());
        let events = db.store.list_audit(&audit_filter()).await.unwrap();
        assert_eq!(
            events.iter().filter(|e| e.id == event.id).count(),
            1,
            "dropped after {micros} µs"
        );
    }
}

#[tokio::test]
async fn a_completed_login_ends_or_renews_the_browser_session() {
    let db = seeded().await;
    let old = session("s1", "secret1");
    db.store.insert_session(&old).await.unwrap();
    db.store.insert_code(&code("c")).await.unwrap();
    db.store
        .exchange_code("c", &grant("g1", "a"), None, 110)
        .await
        .unwrap();
    // Another user in this browser: the old session ends with its grants, a new one starts.
    let (new, event) = (session("s2", "secret2"), login_succeeded("e1"));
    let start = Completion {
        login: None,
        session: SessionWrite::Start {
            session: &new,
            replaces: Some("s1"),
        },
        audit: &event,
        code: None,
        now: 150,
    };
    assert!(db.store.complete_login(&start).await.unwrap());
    assert_eq!(
        db.store.get_session("s1").await.unwrap().unwrap().ended_at,
        Some(150)
    );
    assert_eq!(revoked_at(&db.store, "g1").await, Some(150));
    // The same user again: the session stays, with the new authentication; the time of the
    // last second factor is kept when none was verified now.
    for (event, mfa_verified_at, expected) in [("e2", Some(300), Some(300)), ("e3", None, Some(300))] {
        let event = login_succeeded(event);
        let renew = Completion {
            login: None,
            session: SessionWrite::Reauthenticate {
                id: "s2",
                auth_time: 290,
                amr: "[\"pwd\",\"otp\"]",
                acr: "urn:portcullis:acr:mfa",
                expires_at: 2_000,
                mfa_verified_at,
            },
            audit: &event,
            code: None,
            now: 300,
        };
        assert!(db.store.complete_login(&renew).await.unwrap());
        let stored = db.store.get_session("s2").await.unwrap().unwrap();
        assert_eq!(
            (
                stored.auth_time,
                stored.expires_at,
                stored.mfa_verified_at,
                stored.acr.as_str()
            ),
            (290, 2_000, expected, "urn:portcullis:acr:mfa")
        );
    }
}

fn audit_filter() -> AuditFilter {
    AuditFilter {
        limit: 100,
        ..AuditFilter::default()
    }
}

fn code(hash: &str) -> NewCode {
    NewCode {
        code_hash: hash.into(),
        client_id: "a".into(),
        user_id: "u1".into(),
        session_id: "s1".into(),
        login_id: None,
        redirect_uri: "https://a.example.com/cb".into(),
        scope: "openid".into(),
        nonce: None,
        code_challenge: None,
        auth_time: 100,
        amr: "[\"pwd\"]".into(),
        acr: "urn:portcullis:acr:pwd".into(),
        acr_values: "[]".into(),
        skipped: false,
        created_at: 100,
        expires_at: 160,
    }
}

#[tokio::test]
async fn a_code_context_reads_what_the_single_getters_read() {
    let db = seeded_with_a_confirmed_totp_factor().await;
    db.store.insert_login(&stored_login("l1")).await.unwrap();
    let mut from_login = code("c");
    from_login.login_id = Some("l1".into());
    db.store.insert_code(&from_login).await.unwrap();
    db.store.insert_code(&code("bare")).await.unwrap();

    let context = db.store.code_context("c").await.unwrap().unwrap();
    assert_eq!(
        Some(&context.code),
        db.store.get_code("c").await.unwrap().as_ref()
    );
    assert_eq!(context.code.created_at, 100, "the code's, not the user's");
    let login = db.store.get_login("l1").await.unwrap().unwrap();
    assert_eq!(context.login_state.as_deref(), Some(login.state.as_str()));
    let user = db.store.get_user_with_tenancy("u1").await.unwrap().unwrap();
    assert_eq!(context.user.user.user, user.user);
    assert_eq!(context.user.user.reseller_id, "r1");
    let (policy, _) = db.store.policy_inputs("u1", "c1").await.unwrap().unwrap();
    assert_eq!(
        (&context.user.policy.company, &context.user.policy.reseller),
        (&policy.company, &policy.reseller)
    );
    assert_eq!(context.user.policy.mfa, policy.mfa);
    assert_eq!(context.user.confirmed, vec!["totp".to_string()]);

    let bare = db.store.code_context("bare").await.unwrap().unwrap();
    assert_eq!(bare.login_state, None);
    assert!(db.store.code_context("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn a_code_is_exchanged_once_and_a_replay_revokes_its_grant() {
    let db = seeded().await;
    db.store.insert_code(&code("c")).await.unwrap();
    let first = grant("g1", "a");
    assert_eq!(
        db.store
            .exchange_code("c", &first, Some(("r1", 5_000)), 110)
            .await
            .unwrap(),
        CodeExchange::Exchanged
    );
    let stored = db.store.get_code("c").await.unwrap().unwrap();
    assert_eq!(
        (stored.used_at, stored.grant_id.as_deref()),
        (Some(110), Some("g1"))
    );
    assert_eq!(
        db.store
            .exchange_code("c", &grant("g2", "a"), Some(("r2", 5_000)), 111)
            .await
            .unwrap(),
        CodeExchange::Replayed
    );
    assert_eq!(revoked_at(&db.store, "g1").await, Some(111));
    assert!(
        db.store.get_grant("g2").await.unwrap().is_none(),
        "the replay created nothing"
    );
    assert!(
        db.store
            .grant_of_refresh_token("r1", 112)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_code_exchange_that_cannot_be_stored_writes_nothing() {
    let db = seeded().await;
    issue(&db.store, "g0", "r0", 5_000).await;
    db.store.insert_code(&code("c")).await.unwrap();
    // The first refresh token's hash is taken: the grant's insert must not stay either.
    let failed = db
        .store
        .exchange_code("c", &grant("g1", "a"), Some(("r0", 5_000)), 110)
        .await;
    assert!(failed.is_err());
    assert_eq!(db.store.get_code("c").await.unwrap().unwrap().used_at, None);
    assert!(db.store.get_grant("g1").await.unwrap().is_none());
    assert_eq!(
        db.store
            .exchange_code("c", &grant("g1", "a"), Some(("r1", 5_000)), 111)
            .await
            .unwrap(),
        CodeExchange::Exchanged
    );
    assert!(
        db.store
            .grant_of_refresh_token("r1", 112)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let db = seeded().await;
    issue(&db.store, "g1", "r1", 5_000).await;

    // Another client presenting the token: nothing happens.
    assert_eq!(
        db.store
            .rotate_refresh_token("b", "r1", "x", 6_000, 120)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    assert_eq!(
        db.store
            .rotate_refresh_token("a", "r1", "r2", 6_000, 120)
            .await
            .unwrap(),
        RefreshOutcome::Rotated("g1".into())
    );
    assert!(
        db.store
            .grant_of_refresh_token("r1", 121)
            .await
            .unwrap()
            .is_none(),
        "the rotated token is used"
    );
    let (_, expires) = db.store.grant_of_refresh_token("r2", 121).await.unwrap().unwrap();
    assert_eq!(expires, 6_000);
    // The family never outlives the grant.
    let RefreshOutcome::Rotated(_) = db
        .store
        .rotate_refresh_token("a", "r2", "r3", 99_999, 130)
        .await
        .unwrap()
    else {
        panic!("expected a rotation");
    };
    assert_eq!(
        db.store
            .grant_of_refresh_token("r3", 131)
            .await
            .unwrap()
            .unwrap()
            .1,
        10_000
    );

    assert_eq!(
        db.store
            .rotate_refresh_token("a", "r1", "r4", 6_000, 140)
            .await
            .unwrap(),
        RefreshOutcome::Reused
    );
    assert!(revoked_at(&db.store, "g1").await.is_some());
    assert_eq!(
        db.store
            .rotate_refresh_token("a", "r3", "r5", 6_000, 141)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    assert_eq!(
        db.store
            .rotate_refresh_token("a", "unknown", "r6", 6_000, 141)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
}

#[tokio::test]
async fn expired_refresh_tokens_are_invalid() {
    let db = seeded().await;
    issue(&db.store, "g1", "r1", 500).await;
    assert_eq!(
        db.store
            .rotate_refresh_token("a", "r1", "r2", 6_000, 500)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
}

#[tokio::test]
async fn sessions_end_with_their_grants() {
    let db = seeded().await;
    let session = session("s1", "secret");
    db.store.insert_session(&session).await.unwrap();
    assert_eq!(
        db.store.find_live_session("secret", 999).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        db.store.find_live_session("secret", 1_000).await.unwrap(),
        None,
        "expired"
    );
    db.store.insert_code(&code("c")).await.unwrap();
    db.store
        .exchange_code("c", &grant("g1", "a"), None, 110)
        .await
        .unwrap();
    db.store.end_session("s1", 200).await.unwrap();
    assert_eq!(db.store.find_live_session("secret", 201).await.unwrap(), None);
    assert_eq!(revoked_at(&db.store, "g1").await, Some(200));
}

#[tokio::test]
async fn throttles_count_within_a_window_and_lock() {
    let db = db().await;
    let lock_at_three = |n: i64| (n >= 3).then_some(60);
    for (now, expected) in [(100, 1), (110, 2)] {
        let t = db
            .store
            .record_failure("k", now, 900, lock_at_three)
            .await
            .unwrap();
        assert_eq!((t.failures, t.locked_until), (expected, 0));
    }
    let t = db
        .store
        .record_failure("k", 120, 900, lock_at_three)
        .await
        .unwrap();
    assert_eq!((t.failures, t.locked_until), (3, 180));
    // A new window starts the count again.
    let t = db
        .store
        .record_failure("k", 1_100, 900, lock_at_three)
        .await
        .unwrap();
    assert_eq!((t.failures, t.window_start), (1, 1_100));
    db.store.clear_throttle("k").await.unwrap();
    assert!(db.store.get_throttle("k").await.unwrap().is_none());
}

#[tokio::test]
async fn throttles_of_two_keys_read_at_once() {
    let db = db().await;
    let never = |_: i64| None;
    db.store.record_failure("a", 100, 900, never).await.unwrap();
    db.store.record_failure("b", 100, 900, never).await.unwrap();
    db.store.record_failure("b", 110, 900, never).await.unwrap();
    let mut both = db.store.get_throttles("a", Some("b")).await.unwrap();
    both.sort_by(|x, y| x.key.cmp(&y.key));
    let counts: Vec<_> = both.iter().map(|t| (t.key.as_str(), t.failures)).collect();
    assert_eq!(counts, [("a", 1), ("b", 2)]);
    let one = db.store.get_throttles("b", Some("missing")).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(db.store.get_throttles("a", None).await.unwrap().len(), 1);
    assert!(db.store.get_throttles("missing", None).await.unwrap().is_empty());
}

#[tokio::test]
async fn purge_deletes_only_what_expired_before_the_horizon() {
    let db = seeded().await;
    db.store.insert_code(&code("old")).await.unwrap();
    db.store
        .insert_code(&NewCode {
            expires_at: 10_000,
            ..code("new")
        })
        .await
        .unwrap();
    db.store.revoke_jti("j", 150).await.unwrap();
    let deleted = db.store.purge_expired(5_000, 1_000).await.unwrap();
    assert_eq!(deleted, 2);
    assert!(db.store.get_code("old").await.unwrap().is_none());
    assert!(db.store.get_code("new").await.unwrap().is_some());
    assert!(!db.store.is_jti_revoked("j").await.unwrap());
}

fn totp_factor(id: &str) -> portcullis::storage::Factor {
    portcullis::storage::Factor {
        id: id.into(),
        user_id: "u1".into(),
        kind: "totp".into(),
        secret: Some(vec![1, 2, 3]),
        destination: None,
        last_step: None,
        created_at: 10,
        confirmed_at: None,
        verified_at: None,
    }
}

#[tokio::test]
async fn a_factor_is_confirmed_once_and_replaces_the_previous_one() {
    let db = seeded().await;
    db.store.insert_pending_factor(&totp_factor("f1")).await.unwrap();
    assert!(
        db.store
            .confirm_factor(
                &totp_factor("f1"),
                Some(100),
                Some(&["h1".into(), "h2".into()]),
                &[],
                20
            )
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .confirm_factor(&totp_factor("f1"), Some(100), None, &[], 21)
            .await
            .unwrap(),
        "only once"
    );
    assert_eq!(db.store.recovery_codes_left("u1").await.unwrap(), 2);
    // A later step is accepted once; the same or an earlier one never.
    assert!(db.store.accept_totp_step("f1", 101).await.unwrap());
    assert!(!db.store.accept_totp_step("f1", 101).await.unwrap());
    assert!(!db.store.accept_totp_step("f1", 100).await.unwrap());
    // A new TOTP factor replaces the old one when confirmed.
    db.store.insert_pending_factor(&totp_factor("f2")).await.unwrap();
    db.store
        .confirm_factor(&totp_factor("f2"), Some(5), None, &[], 30)
        .await
        .unwrap();
    let factors = db.store.factors_of("u1").await.unwrap();
    assert_eq!(
        factors.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        vec!["f2"]
    );
    // Recovery codes are single use.
    assert!(db.store.use_recovery_code("u1", "h1", 40).await.unwrap());
    assert!(!db.store.use_recovery_code("u1", "h1", 41).await.unwrap());
    assert_eq!(db.store.recovery_codes_left("u1").await.unwrap(), 1);
}

#[tokio::test]
async fn reset_requests_do_not_pile_up_and_a_reset_clears_everything() {
    let db = seeded().await;
    db.store.insert_pending_factor(&totp_factor("f1")).await.unwrap();
    db.store
        .confirm_factor(&totp_factor("f1"), None, Some(&["h".into()]), &[], 20)
        .await
        .unwrap();
    db.store.record_skip("u1", 25).await.unwrap();
    let request = |id: &str| portcullis::storage::ResetRequest {
        id: id.into(),
        user_id: "u1".into(),
        company_id: "c1".into(),
        status: "pending".into(),
        source: "account".into(),
        created_at: 30,
        decided_at: None,
        decided_by: None,
    };
    assert_eq!(
        db.store.file_reset_request(&request("r1"), &[]).await.unwrap(),
        portcullis::storage::ResetFiled::Created
    );
    assert!(matches!(
        db.store.file_reset_request(&request("r2"), &[]).await.unwrap(),
        portcullis::storage::ResetFiled::AlreadyPending(p) if p.id == "r1"
    ));
    db.store
        .reset_user_mfa("u1", Some("admin"), &[], 40)
        .await
        .unwrap();
    assert!(db.store.factors_of("u1").await.unwrap().is_empty());
    assert_eq!(db.store.recovery_codes_left("u1").await.unwrap(), 0);
    assert!(db.store.pending_reset_request("u1").await.unwrap().is_none());
    let state = db.store.get_user_mfa("u1").await.unwrap();
    assert_eq!((state.skipped_at, state.skip_count), (None, 0));
}

#[tokio::test]
async fn policies_round_trip_and_turning_off_can_drop_enrolments() {
    let db = seeded().await;
    let policy = portcullis::policy::CompanyPolicy {
        mode: portcullis::policy::Mode::Required,
        allow_skip: true,
        skip_limit: Some(3),
        skip_deadline: Some(9_999),
        reset_approvers: vec!["u1".into()],
        keep_enrollments_when_off: false,
        ..portcullis::policy::CompanyPolicy::default()
    };
    db.store
        .save_company_policy("c1", &policy, false, &[], 10)
        .await
        .unwrap();
    assert_eq!(
        db.store.get_company_policy("c1").await.unwrap(),
        Some(policy.clone())
    );
    db.store.insert_pending_factor(&totp_factor("f1")).await.unwrap();
    db.store
        .confirm_factor(&totp_factor("f1"), None, None, &[], 20)
        .await
        .unwrap();
    let off = portcullis::policy::CompanyPolicy {
        mode: portcullis::policy::Mode::Off,
        ..policy
    };
    db.store
        .save_company_policy("c1", &off, true, &[], 30)
        .await
        .unwrap();
    assert!(db.store.factors_of("u1").await.unwrap().is_empty());
    // Enforcement and the reseller minimum.
    db.store.enforce("c1", "r1", None, 40).await.unwrap();
    assert_eq!(
        db.store.get_enforcement("c1").await.unwrap().unwrap().reseller_id,
        "r1"
    );
    assert!(db.store.release("c1").await.unwrap());
    assert!(!db.store.release("c1").await.unwrap());
    db.store
        .set_reseller_minimum("r1", portcullis::policy::Mode::Optional, None, 50)
        .await
        .unwrap();
    assert_eq!(
        db.store.get_reseller_minimum("r1").await.unwrap(),
        Some((portcullis::policy::Mode::Optional, None))
    );
}

#[tokio::test]
async fn queued_email_is_claimed_by_one_sender_at_a_time() {
    let db = db().await;
    let email = portcullis::storage::OutgoingEmail {
        id: "e1".into(),
        recipient: "a@example.com".into(),
        kind: "mfa_enrolled".into(),
        subject: "s".into(),
        body_text: "t".into(),
        body_html: "h".into(),
        created_at: 100,
        attempts: 0,
        next_attempt_at: 100,
        sent_at: None,
        failed_at: None,
        last_error: None,
    };
    db.store.queue_emails(&[email]).await.unwrap();
    assert_eq!(db.store.due_emails(99, 10).await.unwrap().len(), 0);
    assert_eq!(db.store.due_emails(100, 10).await.unwrap().len(), 1);
    assert!(db.store.claim_email("e1", 0, 130).await.unwrap());
    assert!(
        !db.store.claim_email("e1", 0, 130).await.unwrap(),
        "a second sender loses"
    );
    assert!(
        db.store.due_emails(120, 10).await.unwrap().is_empty(),
        "not due until the retry"
    );
    db.store.email_attempt_failed("e1", "451", None).await.unwrap();
    assert_eq!(db.store.due_emails(130, 10).await.unwrap()[0].attempts, 1);
    db.store.email_sent("e1", 131).await.unwrap();
    assert!(db.store.due_emails(10_000, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_policy_context_reads_what_the_single_getters_read() {
    use portcullis::policy::{CompanyPolicy, Method, Methods, Mode, OptOut};
    let db = seeded().await;
    let (empty, no_factors) = db.store.policy_inputs("u1", "c1").await.unwrap().unwrap();
    assert!(no_factors.is_empty());
    assert_eq!(
        (empty.company.id.as_str(), empty.reseller.id.as_str()),
        ("c1", "r1")
    );
    assert_eq!(empty.company.name, "C");
    assert_eq!(empty.reseller.name, "R");
    assert_eq!(empty.policy, None);
    assert_eq!(empty.minimum, None);
    assert_eq!(empty.enforcement, None);
    assert_eq!(empty.mfa, Default::default());
    assert!(db.store.policy_inputs("u1", "nope").await.unwrap().is_none());

    db.store
        .insert_user("u2", &new_user("c1", "bob"), Some("h"), 1)
        .await
        .unwrap();
    let totp: Methods = [Method::Totp].into_iter().collect();
    let policy = CompanyPolicy {
        mode: Mode::Required,
        allow_skip: true,
        skip_limit: Some(2),
        reset_approvers: vec!["u2".into(), "u1".into()],
        ..CompanyPolicy::default()
    };
    db.store
        .save_company_policy("c1", &policy, false, &[], 10)
        .await
        .unwrap();
    db.store
        .set_reseller_minimum("r1", Mode::Optional, Some(&totp), 11)
        .await
        .unwrap();
    db.store.enforce("c1", "r1", Some(&totp), 12).await.unwrap();
    let opt_out = OptOut {
        reason: "kiosk".into(),
        expires_at: Some(99),
    };
    db.store.set_opt_out("u1", Some(&opt_out), 13).await.unwrap();
    db.store.record_skip("u1", 14).await.unwrap();

    let (full, _) = db.store.policy_inputs("u1", "c1").await.unwrap().unwrap();
    let stored_policy = db.store.get_company_policy("c1").await.unwrap();
    assert_eq!(full.policy, stored_policy);
    assert_eq!(
        full.policy.as_ref().unwrap().reset_approvers,
        vec!["u1".to_string(), "u2".to_string()]
    );
    assert_eq!(full.minimum, db.store.get_reseller_minimum("r1").await.unwrap());
    assert_eq!(full.minimum, Some((Mode::Optional, Some(totp.clone()))));
    assert_eq!(full.enforcement, db.store.get_enforcement("c1").await.unwrap());
    assert_eq!(full.enforcement.as_ref().unwrap().methods, Some(totp));
    assert_eq!(full.mfa, db.store.get_user_mfa("u1").await.unwrap());
    assert_eq!(full.mfa.opt_out, Some(opt_out));
    assert_eq!((full.mfa.skipped_at, full.mfa.skip_count), (Some(14), 1));
    // Another user of the company: the company's settings, not u1's opt-out.
    let (other, _) = db.store.policy_inputs("u2", "c1").await.unwrap().unwrap();
    assert_eq!(other.mfa, Default::default());
    assert_eq!(other.enforcement, full.enforcement);

    // The refresh grant reads the same, with the grant, the user and the confirmed methods,
    // in one statement keyed by its token.
    db.store.insert_pending_factor(&totp_factor("f1")).await.unwrap();
    db.store
        .confirm_factor(&totp_factor("f1"), Some(1), None, &[], 15)
        .await
        .unwrap();
    let mut pending = totp_factor("f2");
    pending.kind = "sms".into();
    pending.secret = None;
    pending.destination = Some("+15550100".into());
    db.store.insert_pending_factor(&pending).await.unwrap();
    let mut older = totp_factor("f3");
    older.kind = "email".into();
    older.secret = Some(vec![0x00, 0xff, 0x80, 0x7f]);
    older.destination = Some("a@example.com".into());
    older.created_at = 5;
    db.store.insert_pending_factor(&older).await.unwrap();

    // The login steps read the policy context and the factors in one statement.
    // With factors the context still reads what the single getters read (confirming the
    // factor cleared u1's skip).
    let (context, factors) = db.store.policy_inputs("u1", "c1").await.unwrap().unwrap();
    assert_eq!(
        (&context.company, &context.reseller),
        (&full.company, &full.reseller)
    );
    assert_eq!(context.policy, db.store.get_company_policy("c1").await.unwrap());
    assert_eq!(
        context.minimum,
        db.store.get_reseller_minimum("r1").await.unwrap()
    );
    assert_eq!(context.enforcement, db.store.get_enforcement("c1").await.unwrap());
    assert_eq!(context.mfa, db.store.get_user_mfa("u1").await.unwrap());
    assert_eq!(context.mfa.skip_count, 0);
    assert_eq!(factors, db.store.factors_of("u1").await.unwrap());
    assert_eq!(
        factors.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        ["f3", "f1", "f2"],
        "oldest first, then by id"
    );
    assert_eq!(factors[0].secret, Some(vec![0x00, 0xff, 0x80, 0x7f]));
    assert_eq!(factors[2].secret, None);
    let (_, none) = db.store.policy_inputs("u2", "c1").await.unwrap().unwrap();
    assert!(none.is_empty());
    assert!(db.store.policy_inputs("u1", "nope").await.unwrap().is_none());

    issue(&db.store, "g1", "r1", 5_000).await;
    for (token, now) in [("r1", 5_000), ("nope", 111)] {
        let refused = db.store.refresh_grant("a", token, "x", 6_000, now).await.unwrap();
        assert!(
            matches!(refused, Refreshed::Refused(RefreshOutcome::Invalid)),
            "{token} at {now} (expired, unknown): {refused:?}"
        );
    }
    let Refreshed::Rotated(refresh) = db.store.refresh_grant("a", "r1", "r2", 6_000, 111).await.unwrap()
    else {
        panic!("r1 is current");
    };
    assert_eq!(refresh.grant, db.store.get_grant("g1").await.unwrap().unwrap());
    let user = db.store.get_user_with_tenancy("u1").await.unwrap().unwrap();
    assert_eq!(refresh.user.user, user.user);
    assert_eq!(
        (
            refresh.user.reseller_id.as_str(),
            refresh.user.password_hash.as_deref()
        ),
        ("r1", Some("h"))
    );
    assert_eq!(
        (&refresh.policy.company, &refresh.policy.reseller),
        (&full.company, &full.reseller)
    );
    assert_eq!(refresh.policy.policy, full.policy);
    assert_eq!(refresh.policy.minimum, full.minimum);
    assert_eq!(refresh.policy.enforcement, full.enforcement);
    // (Confirming the factor ended the remembered skip.)
    assert_eq!(refresh.policy.mfa, db.store.get_user_mfa("u1").await.unwrap());
    assert_eq!(refresh.policy.mfa.opt_out, full.mfa.opt_out);
    assert_eq!(
        refresh.confirmed,
        vec!["totp".to_string()],
        "not the pending SMS factor"
    );
    assert!(
        db.store
            .grant_of_refresh_token("r1", 112)
            .await
            .unwrap()
            .is_none(),
        "used"
    );
    assert_eq!(
        db.store
            .grant_of_refresh_token("r2", 112)
            .await
            .unwrap()
            .unwrap()
            .0
            .id,
        "g1"
    );
}

#[tokio::test]
async fn many_writers_at_once_all_land() {
    let db = seeded().await;
    for i in 0..100 {
        issue(&db.store, &format!("g{i}"), &format!("r{i}"), 5_000).await;
    }
    // On SQLite they take turns at the write lock.
    let outcomes = rotate_at_once(&db.store, (0..100).map(|i| (format!("r{i}"), format!("n{i}")))).await;
    assert!(
        outcomes.iter().all(|o| matches!(o, RefreshOutcome::Rotated(_))),
        "{outcomes:?}"
    );
    for i in 0..100 {
        assert!(
            db.store
                .grant_of_refresh_token(&format!("n{i}"), 121)
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test]
async fn one_token_rotated_twice_at_once_is_reuse() {
    let db = seeded().await;
    issue(&db.store, "g1", "r1", 5_000).await;
    // Eight rotations of one token at once: one successor is stored, the others count as
    // reuse (on PostgreSQL a later INSERT waits for the first and breaks the unique parent,
    // or finds the token used; on SQLite each runs after the first and finds it used).
    let outcomes = rotate_at_once(&db.store, (0..8).map(|i| ("r1".into(), format!("n{i}")))).await;
    let rotated = outcomes
        .iter()
        .filter(|o| **o == RefreshOutcome::Rotated("g1".into()))
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, RefreshOutcome::Rotated(_) | RefreshOutcome::Reused)),
        "{outcomes:?}"
    );
    assert!(
        revoked_at(&db.store, "g1").await.is_some(),
        "the family is revoked"
    );
}

#[tokio::test]
async fn a_refresh_grant_rotates_a_current_token_once() {
    let db = seeded().await;
    issue(&db.store, "g1", "r1", 5_000).await;
    // Another client's token, an unknown one, an expired one: refused, nothing changes.
    for (client, token, now) in [("b", "r1", 120), ("a", "nope", 120), ("a", "r1", 5_000)] {
        let refreshed = db
            .store
            .refresh_grant(client, token, "x", 6_000, now)
            .await
            .unwrap();
        assert!(
            matches!(refreshed, Refreshed::Refused(RefreshOutcome::Invalid)),
            "{client} {token} {now}: {refreshed:?}"
        );
    }
    assert!(
        db.store
            .grant_of_refresh_token("r1", 121)
            .await
            .unwrap()
            .is_some(),
        "r1 still current"
    );
    assert!(db.store.grant_of_refresh_token("x", 121).await.unwrap().is_none());

    // The successor expires with its family at the latest.
    let Refreshed::Rotated(context) = db
        .store
        .refresh_grant("a", "r1", "r2", 99_999, 130)
        .await
        .unwrap()
    else {
        panic!("r1 is current");
    };
    assert_eq!(
        (context.grant.id.as_str(), context.user.user.id.as_str()),
        ("g1", "u1")
    );
    let (grant, expires_at) = db.store.grant_of_refresh_token("r2", 131).await.unwrap().unwrap();
    assert_eq!((grant.id.as_str(), expires_at), ("g1", grant.expires_at));
    assert!(
        db.store
            .grant_of_refresh_token("r1", 131)
            .await
            .unwrap()
            .is_none(),
        "r1 is used"
    );

    // Eight refreshes of r2 at once: one rotates, the others are reuse and end the family.
    let refreshes: Vec<_> = (0..8)
        .map(|i| {
            let store = db.store.clone();
            tokio::spawn(async move { store.refresh_grant("a", "r2", &format!("n{i}"), 6_000, 140).await })
        })
        .collect();
    let mut rotated = 0;
    for refresh in refreshes {
        match refresh.await.unwrap().unwrap() {
            Refreshed::Rotated(context) => {
                assert_eq!(context.grant.id, "g1");
                rotated += 1;
            }
            Refreshed::Refused(outcome) => assert_eq!(outcome, RefreshOutcome::Reused),
        }
    }
    assert_eq!(rotated, 1);
    assert!(revoked_at(&db.store, "g1").await.is_some());
    // Reuse of the first token now: refused as reuse, nothing stored.
    let again = db.store.refresh_grant("a", "r1", "y", 6_000, 150).await.unwrap();
    assert!(
        matches!(again, Refreshed::Refused(RefreshOutcome::Reused)),
        "{again:?}"
    );
    assert!(db.store.grant_of_refresh_token("y", 151).await.unwrap().is_none());
}

/// Refreshes at once go to the database together (in one statement on PostgreSQL, one write
/// turn on SQLite): each gets its own grant's context back, and a token presented twice among
/// them rotates once. There are more of them than the batches in flight can hold (two of 64
/// on PostgreSQL), so that some go out in a batch that a finished one sends next.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refreshes_at_once_each_get_their_own_grant() {
    const REFRESHES: usize = 150;
    let db = seeded().await;
    for i in 0..REFRESHES {
        issue(&db.store, &format!("g{i}"), &format!("r{i}"), 5_000).await;
    }
    let presented = (0..REFRESHES)
        .map(|i| format!("r{i}"))
        .chain(["r0".into(), "r1".into()]);
    let refreshes: Vec<_> = presented
        .enumerate()
        .map(|(n, old)| {
            let store = db.store.clone();
            tokio::spawn(async move {
                let refreshed = store.refresh_grant("a", &old, &format!("n{n}"), 6_000, 130).await;
                (old, refreshed)
            })
        })
        .collect();
    let (mut rotated, mut reused) = (Vec::new(), 0);
    for refresh in refreshes {
        let (old, refreshed) = refresh.await.unwrap();
        match refreshed.unwrap() {
            Refreshed::Rotated(context) => {
                assert_eq!(
                    context.grant.id,
                    old.replace('r', "g"),
                    "the context of {old}'s grant"
                );
                assert_eq!(context.user.user.id, "u1");
                rotated.push(context.grant.id);
            }
            Refreshed::Refused(outcome) => {
                assert_eq!(outcome, RefreshOutcome::Reused, "{old}");
                assert!(old == "r0" || old == "r1", "{old} was refused");
                reused += 1;
            }
        }
    }
    rotated.sort();
    rotated.dedup();
    assert_eq!((rotated.len(), reused), (REFRESHES, 2));
    // Every successor of a token presented once is current.
    for n in 2..REFRESHES {
        assert!(
            db.store
                .grant_of_refresh_token(&format!("n{n}"), 131)
                .await
                .unwrap()
                .is_some(),
            "n{n}"
        );
    }
}

/// The one prepared statement of every refresh batch on PostgreSQL reads each presented token
/// by its primary key and that token's grant by its own, whatever the planner believes of the
/// tables: here a few hundred grants it has never analysed, and the generic plan it settles on
/// after five executions (a plan for ten rotations of unknown values). Left free, it read all
/// of a client's live grants for every batch.
#[tokio::test]
async fn a_refresh_batch_reads_tokens_and_grants_by_key() {
    use sqlx::Connection;
    let db = seeded().await;
    if db.url.starts_with("sqlite:") {
        return; // The statement is PostgreSQL's; SQLite's planner always starts from `req`.
    }
    for i in 0..300 {
        issue(&db.store, &format!("g{i}"), &format!("r{i}"), 5_000).await;
    }
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for sql in [
        "SET plan_cache_mode = force_generic_plan",
        &format!("PREPARE batch (text[], text[], text[], int8[], int8[]) AS {PG_REFRESH_BATCH}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let rows: Vec<(String,)> = sqlx::query_as(
        "EXPLAIN EXECUTE batch (ARRAY['n'], ARRAY['r1'], ARRAY['a'], ARRAY[6000]::int8[], ARRAY[130]::int8[])",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let plan: Vec<String> = rows.into_iter().map(|(line,)| line).collect();
    for table in ["grants", "refresh_tokens"] {
        assert!(
            !plan
                .iter()
                .any(|line| line.contains(&format!("Seq Scan on {table}"))),
            "{table} read whole:\n{}",
            plan.join("\n")
        );
    }
}

/// A refresh whose statement fails for another reason than a race (here the database refuses
/// every new refresh token) answers an error and uses nothing up: the batch fails, each of its
/// rotations is tried alone and fails too, and the presented token stays current.
#[tokio::test]
async fn a_refresh_that_cannot_be_stored_uses_nothing_up() {
    let db = seeded().await;
    issue(&db.store, "g1", "r1", 5_000).await;
    let (refuse, allow) = if db.url.starts_with("sqlite:") {
        (
            "CREATE TRIGGER refuse_refresh BEFORE INSERT ON refresh_tokens BEGIN SELECT RAISE(ABORT, 'refused'); END",
            "DROP TRIGGER refuse_refresh",
        )
    } else {
        (
            "ALTER TABLE refresh_tokens ADD CONSTRAINT refuse_refresh CHECK (token_hash = '') NOT VALID",
            "ALTER TABLE refresh_tokens DROP CONSTRAINT refuse_refresh",
        )
    };
    execute(&db.url, refuse).await;
    let failed = db.store.refresh_grant("a", "r1", "r2", 6_000, 130).await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(
        db.store
            .grant_of_refresh_token("r1", 131)
            .await
            .unwrap()
            .is_some(),
        "r1 is still current"
    );
    assert!(revoked_at(&db.store, "g1").await.is_none());
    execute(&db.url, allow).await;
    let refreshed = db.store.refresh_grant("a", "r1", "r2", 6_000, 140).await.unwrap();
    assert!(matches!(refreshed, Refreshed::Rotated(_)), "{refreshed:?}");
}

/// On PostgreSQL, new pages of refresh tokens keep a fifth free (migration 0007), so that
/// marking a replaced token used rewrites its row in place without new index entries.
#[tokio::test]
async fn refresh_token_pages_keep_room_for_marking_tokens_used() {
    use sqlx::Connection;
    let db = seeded().await;
    if db.url.starts_with("sqlite:") {
        return; // SQLite has no fill factor.
    }
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (options,): (Option<Vec<String>>,) =
        sqlx::query_as("SELECT reloptions FROM pg_class WHERE relname = 'refresh_tokens'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(options, Some(vec!["fillfactor=80".to_owned()]));
    conn.close().await.unwrap();
}

/// A batch connection that broke while idle (here its server process was ended) costs the
/// next batch a retry, not the refreshes: that batch fails, its rotation is stored alone, the
/// broken connection is dropped, and the batch after it goes out on a new one.
#[tokio::test]
async fn a_broken_batch_connection_is_replaced() {
    use sqlx::Connection;
    let db = seeded().await;
    if db.url.starts_with("sqlite:") {
        return; // Batches have connections of their own on PostgreSQL only.
    }
    issue(&db.store, "g1", "r1", 5_000).await;
    let first = db.store.refresh_grant("a", "r1", "r2", 6_000, 130).await.unwrap();
    assert!(matches!(first, Refreshed::Rotated(_)), "{first:?}");
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let ended: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%unnest(%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(ended, vec![(true,)], "one batch connection");
    for (old, new, now) in [("r2", "r3", 140), ("r3", "r4", 150)] {
        let refreshed = db.store.refresh_grant("a", old, new, 6_000, now).await.unwrap();
        assert!(matches!(refreshed, Refreshed::Rotated(_)), "{old}: {refreshed:?}");
    }
    assert!(
        db.store
            .grant_of_refresh_token("r4", 151)
            .await
            .unwrap()
            .is_some(),
        "r4 is current"
    );
    conn.close().await.unwrap();
}

/// A refresh whose request goes away while it waits for a batch (its client gave up) is not
/// stored: the old token stays current, so the client's retry with it rotates it instead of
/// counting as reuse. Here a batch waits for a row lock held elsewhere while its refresh holds
/// the other turn to send one (as a refresh does until its own batch answers); a second refresh
/// queues behind them and is abandoned; then the lock goes, and the batch that finishes takes
/// the next one from the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_abandoned_before_its_batch_is_not_stored() {
    use sqlx::Connection;
    let db = seeded().await;
    if db.url.starts_with("sqlite:") {
        return; // A batch can be held up from outside and watched on PostgreSQL only.
    }
    issue(&db.store, "g1", "r1", 5_000).await;
    issue(&db.store, "g2", "r2", 5_000).await;
    // The foreign key check of the new token waits for its grant's row.
    let mut locker = holding_locks(&db.url, "SELECT id FROM grants WHERE id = 'g1' FOR UPDATE").await;
    let in_flight = {
        let store = db.store.clone();
        tokio::spawn(async move { store.refresh_grant("a", "r1", "r1-next", 6_000, 120).await })
    };
    let mut watcher = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let waiting = count_until(
        &mut watcher,
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
        1,
    )
    .await;
    assert_eq!(waiting, 1, "the batch waits for the lock");
    let abandoned = {
        let store = db.store.clone();
        tokio::spawn(async move { store.refresh_grant("a", "r2", "r2-next", 6_000, 120).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    abandoned.abort();
    assert!(abandoned.await.unwrap_err().is_cancelled());
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    let refreshed = in_flight.await.unwrap().unwrap();
    assert!(matches!(refreshed, Refreshed::Rotated(_)), "{refreshed:?}");
    assert!(
        db.store
            .grant_of_refresh_token("r2-next", 130)
            .await
            .unwrap()
            .is_none(),
        "the abandoned refresh stored nothing"
    );
    let retried = db
        .store
        .refresh_grant("a", "r2", "r2-retry", 6_000, 140)
        .await
        .unwrap();
    assert!(matches!(retried, Refreshed::Rotated(_)), "{retried:?}");
    assert!(revoked_at(&db.store, "g2").await.is_none());
    locker.close().await.unwrap();
    watcher.close().await.unwrap();
}

/// A login's statements on PostgreSQL go out on connections the store keeps itself (no ping
/// on their way back). One whose statement was abandoned half-way (its request went away) is
/// closed, not given back: here an update waits for a row lock held elsewhere and is
/// abandoned, more times than the store has connections; the reads after it are answered at
/// once, on other connections (a connection given back would still owe the abandoned
/// update's answer, and the next statement on it would wait for the lock too).
#[tokio::test]
async fn an_abandoned_login_statement_does_not_give_back_its_connection() {
    use sqlx::Connection;
    let db = seeded().await;
    if db.url.starts_with("sqlite:") {
        return; // Logins have connections of their own on PostgreSQL only.
    }
    db.store.insert_login(&stored_login("l1")).await.unwrap();
    db.store.insert_login(&stored_login("l2")).await.unwrap();
    let mut other = holding_locks(
        &db.url,
        "SELECT 1 FROM login_transactions WHERE id = 'l1' FOR UPDATE",
    )
    .await;
    for _ in 0..6 {
        let abandoned = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            db.store.advance_login(&to_refused("l1", 0)),
        )
        .await;
        assert!(abandoned.is_err(), "the update waited for the lock");
        let read = tokio::time::timeout(std::time::Duration::from_secs(2), db.store.get_login("l2")).await;
        let login = read.expect("a read behind an abandoned update").unwrap().unwrap();
        assert_eq!(login.id, "l2");
    }
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
}

/// A kept login connection that broke while idle (here its server process was ended) fails
/// the one statement that finds it broken, and is not kept: the statement after it goes out
/// on a new connection. So does a statement the database refused.
#[tokio::test]
async fn a_login_connection_that_failed_is_not_kept() {
    use sqlx::Connection;
    let db = seeded().await;
    if db.url.starts_with("sqlite:") {
        return; // Logins have connections of their own on PostgreSQL only.
    }
    db.store.insert_login(&stored_login("l1")).await.unwrap();
    // The same id again breaks the primary key: refused, and its connection closed.
    assert!(db.store.insert_login(&stored_login("l1")).await.is_err());
    assert!(db.store.get_login("l1").await.unwrap().is_some());
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let ended: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%FROM login_transactions%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(ended, vec![(true,)], "one kept login connection: the read's");
    // Ended between statements: the next statement on it fails, and the one after works.
    let mut failed = 0;
    for _ in 0..3 {
        match db.store.get_login("l1").await {
            Ok(login) => assert!(login.is_some()),
            Err(_) => failed += 1,
        }
    }
    assert_eq!(
        failed, 1,
        "only the statement that found the connection broken fails"
    );
    conn.close().await.unwrap();
}

#[tokio::test]
async fn closing_a_store_closes_the_connections_of_refresh_batches_and_logins() {
    use sqlx::Connection;
    let db = seeded().await;
    if db.url.starts_with("sqlite:") {
        return; // Batches and logins have connections of their own on PostgreSQL only.
    }
    issue(&db.store, "g1", "r1", 5_000).await;
    let refreshed = db.store.refresh_grant("a", "r1", "r2", 6_000, 130).await.unwrap();
    assert!(matches!(refreshed, Refreshed::Rotated(_)));
    db.store.insert_login(&stored_login("l1")).await.unwrap();
    db.store.close().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // A closed connection's server process may take a moment to leave pg_stat_activity.
    let others = count_until(
        &mut conn,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        0,
    )
    .await;
    assert_eq!(others, 0, "connections left open after close");
    conn.close().await.unwrap();
}

/// Runs `sql` on its own connection to the database at `url`.
async fn execute(url: &str, sql: &'static str) {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
}

/// When grant `id` was revoked, if it was.
async fn revoked_at(store: &Store, id: &str) -> Option<i64> {
    store.get_grant(id).await.unwrap().unwrap().revoked_at
}

/// Issues grant `grant_id` to client `a` at 110 through a code of its own, with refresh
/// token `refresh` expiring at `expires_at`.
/// A connection of its own to `url` in an open transaction that holds the row locks `select`
/// (a `SELECT ... FOR UPDATE`) took; `ROLLBACK` on it lets them go.
async fn holding_locks(url: &str, select: &'static str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    sqlx::query(select).execute(&mut conn).await.unwrap();
    conn
}

/// Runs `count`, a query of one count, on `conn` every 50 ms until it answers `want`, for at
/// most 5 s; returns its last answer.
async fn count_until(conn: &mut sqlx::PgConnection, count: &'static str, want: i64) -> i64 {
    let mut last = -1;
    for _ in 0..100 {
        last = sqlx::query_scalar::<_, i64>(count)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        if last == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    last
}

async fn issue(store: &Store, grant_id: &str, refresh: &str, expires_at: i64) {
    let code_hash = format!("code-{grant_id}");
    store.insert_code(&code(&code_hash)).await.unwrap();
    store
        .exchange_code(
            &code_hash,
            &grant(grant_id, "a"),
            Some((refresh, expires_at)),
            110,
        )
        .await
        .unwrap();
}

/// Starts one rotation (client `a`) per `(old, new)` pair, all together on the runtime's
/// threads, and returns their outcomes.
async fn rotate_at_once(store: &Store, pairs: impl Iterator<Item = (String, String)>) -> Vec<RefreshOutcome> {
    let rotations: Vec<_> = pairs
        .map(|(old, new)| {
            let store = store.clone();
            tokio::spawn(async move { store.rotate_refresh_token("a", &old, &new, 6_000, 120).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for rotation in rotations {
        outcomes.push(rotation.await.unwrap().unwrap());
    }
    outcomes
}

#[tokio::test]
async fn with_background_checkpoints_no_commit_checkpoints() {
    for checkpoints in [Checkpoints::Background, Checkpoints::OnCommit] {
        let db = seeded_with(checkpoints).await;
        // 600 small commits of each kind, at least two pages each: more than SQLite's own
        // threshold (1,000 pages), past which a commit would checkpoint and the next restart
        // the log. Single statements run on the pool, transactions on the writer connection:
        // neither may checkpoint.
        for i in 0..600 {
            db.store.insert_code(&code(&format!("c{i}"))).await.unwrap();
            db.store
                .record_failure(&format!("k{i}"), 1, 60, |_| None)
                .await
                .unwrap();
        }
        let Some((log, copied)) = db.store.checkpoint().await.unwrap() else {
            return; // PostgreSQL: nothing to checkpoint.
        };
        match checkpoints {
            Checkpoints::Background => assert!(log >= 1_000, "{log} frames: a commit checkpointed"),
            Checkpoints::OnCommit => assert!(log < 1_000, "{log} frames: no commit checkpointed"),
        }
        assert_eq!(copied, log, "nothing reads or writes: the whole log is copied");
    }
}

#[tokio::test]
async fn a_long_log_is_truncated_by_the_background_checkpoint() {
    let db = seeded_with(Checkpoints::Background).await;
    if db.store.checkpoint().await.unwrap().is_none() {
        return; // PostgreSQL: nothing to checkpoint.
    }
    // More than LOG_FRAMES_TO_TRUNCATE frames (each commit writes at least two pages).
    let commits = usize::try_from(portcullis::storage::LOG_FRAMES_TO_TRUNCATE / 2 + 100).unwrap();
    for i in 0..commits {
        db.store.insert_code(&code(&format!("c{i}"))).await.unwrap();
    }
    assert_eq!(
        db.store.checkpoint().await.unwrap(),
        Some((0, 0)),
        "the log is empty"
    );
    db.store.insert_code(&code("after")).await.unwrap();
    let (log, _) = db.store.checkpoint().await.unwrap().unwrap();
    assert!(log < 10, "{log} frames: the log started over");
}

/// A log that starts over keeps its file, up to 128 MiB (`journal_size_limit`, on the pool's
/// connections and the inline ones): under sustained writes it holds 60-80 MB between two
/// checkpoints, and cutting it to 32 MiB and growing it again every second slowed the
/// checkpoint's syncs in the write turn.
#[tokio::test]
async fn a_log_that_starts_over_keeps_its_file() {
    let db = seeded_with(Checkpoints::Background).await;
    if db.store.checkpoint().await.unwrap().is_none() {
        return; // PostgreSQL: nothing to checkpoint.
    }
    let mut wal = portcullis::storage::sqlite_path(&db.url)
        .unwrap()
        .into_os_string();
    wal.push("-wal");
    let wal_bytes = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    // More than 32 MiB of log (each commit writes at least two 4 KiB pages), fewer than
    // LOG_FRAMES_TO_TRUNCATE frames.
    let mut i = 0;
    while wal_bytes() < 40 << 20 {
        db.store.insert_code(&code(&format!("c{i}"))).await.unwrap();
        db.store
            .record_failure(&format!("k{i}"), 1, 60, |_| None)
            .await
            .unwrap();
        i += 1;
    }
    let (log, copied) = db.store.checkpoint().await.unwrap().unwrap();
    assert_eq!(log, copied, "the checkpoint completed");
    // The first commit of each kind after it starts the log over.
    db.store.insert_code(&code("after")).await.unwrap();
    db.store.record_failure("after", 1, 60, |_| None).await.unwrap();
    let (log, _) = db.store.checkpoint().await.unwrap().unwrap();
    assert!(log < 100, "{log} frames: the log started over");
    assert!(
        wal_bytes() >= 40 << 20,
        "{} bytes: the log's file was cut",
        wal_bytes()
    );
}

#[tokio::test]
async fn writes_in_turn_still_land_after_the_store_is_closed_and_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _database) = fresh_database(&dir).await;
    let store = Store::connect_with(&url, 4, Checkpoints::Background)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.record_failure("before", 1, 60, |_| None).await.unwrap();
    store.close().await;
    // Closing closed the connection kept for writes in turn; opening again opens another.
    let store = Store::connect_with(&url, 4, Checkpoints::Background)
        .await
        .unwrap();
    store.record_failure("after", 1, 60, |_| None).await.unwrap();
    let counted = store.get_throttles("before", Some("after")).await.unwrap();
    assert_eq!(counted.len(), 2, "{counted:?}");
    // A second store on the same file shares the writer of the newest one.
    let other = Store::connect_with(&url, 4, Checkpoints::Background)
        .await
        .unwrap();
    store.record_failure("after", 1, 60, |_| None).await.unwrap();
    other.record_failure("after", 1, 60, |_| None).await.unwrap();
    let after = store.get_throttle("after").await.unwrap().unwrap();
    assert_eq!(after.failures, 3);
    other.close().await;
    store.close().await;
}

#[tokio::test]
async fn the_purge_reaches_expired_rows_through_indexes() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let (url, database) = fresh_database(&dir).await;
    let store = Store::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    for sql in PURGE_STATEMENTS {
        // Each step of the plan; a whole-table read is `SCAN <table>` on SQLite and `Seq Scan`
        // on PostgreSQL (told to avoid one wherever an index allows, since these tables are
        // empty and a scan of nothing would be its choice).
        let plan: Vec<String> = if database.is_none() {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .bind(0_i64)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            rows.into_iter().map(|(_, _, _, step)| step).collect()
        } else {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut conn)
                .await
                .unwrap();
            let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                .bind(0_i64)
                .fetch_all(&mut conn)
                .await
                .unwrap();
            rows.into_iter().map(|(step,)| step).collect()
        };
        assert!(
            !plan
                .iter()
                .any(|step| step.starts_with("SCAN ") || step.contains("Seq Scan")),
            "{sql} reads the whole table: {plan:?}"
        );
    }
}

/// On SQLite a login's statements run on the request's own thread (`storage::inline`), and
/// there they never wait for a lock: while another connection (another process, say) holds
/// the write lock, a login's writes go through sqlx instead, which waits on a thread of its
/// own, and reads go on meanwhile. The test's runtime has one thread: a write that waited on
/// it would hold the clock below (up to the 10-second busy timeout) and the read after it.
#[tokio::test]
async fn login_writes_wait_for_another_writer_without_holding_the_runtime() {
    use sqlx::Connection;
    let db = seeded().await;
    if !db.url.starts_with("sqlite:") {
        return; // Statements run on the calling thread on SQLite only.
    }
    db.store.insert_login(&stored_login("l1")).await.unwrap();
    db.store.insert_login(&stored_login("l2")).await.unwrap();
    let mut other = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();

    let store = db.store.clone();
    let advanced = tokio::spawn(async move { store.advance_login(&to_refused("l1", 0)).await });
    let store = db.store.clone();
    let completed = tokio::spawn(async move {
        let (new, event) = (session("s2", "secret2"), login_succeeded("e1"));
        let mut issued = code("c1");
        issued.session_id = "s2".into();
        store
            .complete_login(&first_login_ends("l2", &new, &event, &issued))
            .await
    });
    let started = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the runtime was held"
    );
    assert!(!advanced.is_finished() && !completed.is_finished());
    assert_eq!(db.store.get_login("l1").await.unwrap().unwrap().version, 0);

    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    assert!(advanced.await.unwrap().unwrap());
    assert!(completed.await.unwrap().unwrap());
    assert_eq!(db.store.get_login("l1").await.unwrap().unwrap().version, 1);
    assert_eq!(db.store.get_login("l2").await.unwrap().unwrap().version, 1);
    assert!(db.store.get_code("c1").await.unwrap().is_some());
}
