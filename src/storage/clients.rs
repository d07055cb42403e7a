//! Relying-party clients and the companies they are restricted to.

use sqlx::FromRow;

use super::{BeginWrite, Store, StoreError, StoreResult, from_json, parse, to_json, with_db, write_error};
use crate::model::{Client, ScopeSet};

#[derive(FromRow)]
struct ClientRow {
    id: String,
    name: String,
    secret_hash: Option<String>,
    public: bool,
    first_party: bool,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_types: String,
    scopes: String,
    id_token_alg: String,
    reseller_id: Option<String>,
    company_id: Option<String>,
    created_at: i64,
}

impl ClientRow {
    fn into_client(self, allowed_companies: Vec<String>) -> StoreResult<Client> {
        Ok(Client {
            redirect_uris: from_json("clients.redirect_uris", &self.redirect_uris)?,
            post_logout_redirect_uris: from_json(
                "clients.post_logout_redirect_uris",
                &self.post_logout_redirect_uris,
            )?,
            grant_types: from_json("clients.grant_types", &self.grant_types)?,
            scopes: ScopeSet::parse(&self.scopes)
                .map_err(|e| StoreError::Corrupt(format!("clients.scopes: {e}")))?,
            id_token_alg: parse("clients.id_token_alg", &self.id_token_alg)?,
            id: self.id,
            name: self.name,
            secret_hash: self.secret_hash,
            public: self.public,
            first_party: self.first_party,
            reseller_id: self.reseller_id,
            company_id: self.company_id,
            allowed_companies,
            created_at: self.created_at,
        })
    }
}

macro_rules! client_columns {
    () => {
        "id, name, secret_hash, public, first_party, redirect_uris, post_logout_redirect_uris,
         grant_types, scopes, id_token_alg, reseller_id, company_id, created_at"
    };
}

impl Store {
    /// Stores a client and its company restrictions in one transaction.
    pub async fn insert_client(&self, client: &Client) -> StoreResult<()> {
        with_db!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(concat!(
                "INSERT INTO clients (",
                client_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ))
            .bind(&client.id)
            .bind(&client.name)
            .bind(client.secret_hash.as_deref())
            .bind(client.public)
            .bind(client.first_party)
            .bind(to_json(&client.redirect_uris))
            .bind(to_json(&client.post_logout_redirect_uris))
            .bind(to_json(&client.grant_types))
            .bind(client.scopes.to_string())
            .bind(client.id_token_alg.as_str())
            .bind(client.reseller_id.as_deref())
            .bind(client.company_id.as_deref())
            .bind(client.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(e, "client", "reseller or company"))?;
            for company in &client.allowed_companies {
                sqlx::query("INSERT INTO client_companies (client_id, company_id) VALUES ($1, $2)")
                    .bind(&client.id)
                    .bind(company)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| write_error(e, "company restriction", "company"))?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// One client and its company restrictions, in one statement (the token endpoint
    /// reads a client on every request).
    pub async fn get_client(&self, id: &str) -> StoreResult<Option<Client>> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            client: ClientRow,
            allowed_company: Option<String>,
        }
        let rows: Vec<Row> = with_db!(self, |pool| {
            sqlx::query_as(
                "SELECT c.id, c.name, c.secret_hash, c.public, c.first_party, c.redirect_uris,
                        c.post_logout_redirect_uris, c.grant_types, c.scopes, c.id_token_alg,
                        c.reseller_id, c.company_id, c.created_at, cc.company_id AS allowed_company
                 FROM clients c LEFT JOIN client_companies cc ON cc.client_id = c.id
                 WHERE c.id = $1 ORDER BY cc.company_id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        let companies = rows.iter().filter_map(|r| r.allowed_company.clone()).collect();
        rows.into_iter()
            .next()
            .map(|r| r.client.into_client(companies))
            .transpose()
    }

    pub async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let (rows, restrictions): (Vec<ClientRow>, Vec<(String, String)>) = with_db!(self, |pool| {
            let rows = sqlx::query_as(concat!("SELECT ", client_columns!(), " FROM clients ORDER BY id"))
                .fetch_all(pool)
                .await?;
            let restrictions =
                sqlx::query_as("SELECT client_id, company_id FROM client_companies ORDER BY company_id")
                    .fetch_all(pool)
                    .await?;
            (rows, restrictions)
        });
        rows.into_iter()
            .map(|row| {
                let companies = restrictions
                    .iter()
                    .filter(|(client, _)| *client == row.id)
                    .map(|(_, company)| company.clone())
                    .collect();
                row.into_client(companies)
            })
            .collect()
    }
}

impl Store {
    /// Replaces a confidential client's secret hash. Returns false when there is no such
    /// confidential client.
    pub async fn set_client_secret_hash(&self, client_id: &str, secret_hash: &str) -> StoreResult<bool> {
        let updated = with_db!(self, |pool| {
            sqlx::query("UPDATE clients SET secret_hash = $1 WHERE id = $2 AND secret_hash IS NOT NULL")
                .bind(secret_hash)
                .bind(client_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(updated == 1)
    }
}
