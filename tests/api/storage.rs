//! Contract tests of the store, run on whichever backend the suite runs on: both
//! backends must answer alike, including for constraint violations.

use portcullis::model::{
    Client, Company, Email, GrantType, NewUser, Reseller, Role, ScopeSet, SigningAlg, Username,
};
use portcullis::storage::{
    CodeExchange, Grant, NewCode, RefreshOutcome, Session, Store, StoreError, StoredLogin,
};
use tempfile::TempDir;

use crate::helpers::{PgDatabase, fresh_database};

struct Db {
    store: Store,
    _dir: TempDir,
    _database: Option<PgDatabase>,
}

async fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let (url, database) = fresh_database(&dir).await;
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    Db {
        store,
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
    let db = db().await;
    tenant(&db.store).await;
    db.store
        .insert_user("u1", &new_user("c1", "alice"), Some("h"), 1)
        .await
        .unwrap();
    db.store.insert_client(&client("a")).await.unwrap();
    db.store.insert_client(&client("b")).await.unwrap();
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
    let found = db
        .store
        .find_user_for_login(&Username::parse("Alice").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user.id, "u1");
    assert_eq!(found.reseller_id, "r1");
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

#[tokio::test]
async fn a_login_advances_once_per_version() {
    let db = seeded().await;
    let login = StoredLogin {
        id: "l1".into(),
        browser_hash: "b".into(),
        csrf_token: "t".into(),
        client_id: "a".into(),
        request: "{}".into(),
        state: "{\"step\":\"password\"}".into(),
        user_id: None,
        version: 0,
        created_at: 1,
        expires_at: 100,
    };
    db.store.insert_login(&login).await.unwrap();
    assert!(
        db.store
            .advance_login("l1", 0, "{\"step\":\"refused\"}", Some("u1"))
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .advance_login("l1", 0, "{\"step\":\"refused\"}", Some("u1"))
            .await
            .unwrap()
    );
    let stored = db.store.get_login("l1").await.unwrap().unwrap();
    assert_eq!((stored.version, stored.user_id.as_deref()), (1, Some("u1")));
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
    assert_eq!(
        db.store.get_grant("g1").await.unwrap().unwrap().revoked_at,
        Some(111)
    );
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
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let db = seeded().await;
    db.store.insert_code(&code("c")).await.unwrap();
    db.store
        .exchange_code("c", &grant("g1", "a"), Some(("r1", 5_000)), 110)
        .await
        .unwrap();

    // Another client presenting the token: nothing happens.
    assert_eq!(
        db.store
            .rotate_refresh_token("b", "r1", "x", 6_000, 120)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    let RefreshOutcome::Rotated(rotated) = db
        .store
        .rotate_refresh_token("a", "r1", "r2", 6_000, 120)
        .await
        .unwrap()
    else {
        panic!("expected a rotation");
    };
    assert_eq!(rotated.id, "g1");
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
    assert!(
        db.store
            .get_grant("g1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
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
    db.store.insert_code(&code("c")).await.unwrap();
    db.store
        .exchange_code("c", &grant("g1", "a"), Some(("r1", 500)), 110)
        .await
        .unwrap();
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
    let session = Session {
        id: "s1".into(),
        secret_hash: "secret".into(),
        user_id: "u1".into(),
        auth_time: 100,
        amr: "[\"pwd\"]".into(),
        acr: "urn:portcullis:acr:pwd".into(),
        created_at: 100,
        expires_at: 1_000,
        ended_at: None,
        mfa_verified_at: None,
    };
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
    assert_eq!(
        db.store.get_grant("g1").await.unwrap().unwrap().revoked_at,
        Some(200)
    );
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
