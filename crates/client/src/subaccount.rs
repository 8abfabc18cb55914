//! A main account's management of its sub-accounts (creation and listing are in `group.rs`).

use crate::{Client, ClientError};

impl Client {
    /// `POST /api/v1/me/sub-accounts/{username}/role`.
    pub async fn set_sub_account_role(
        &self,
        username: &str,
        role: &str,
    ) -> Result<crate::UserView, ClientError> {
        self.post(
            self.url(&["me", "sub-accounts", username, "role"], &[]),
            &serde_json::json!({ "role": role }),
        )
        .await
    }

    /// `POST /api/v1/me/sub-accounts/{username}/disable`.
    pub async fn disable_sub_account(&self, username: &str) -> Result<(), ClientError> {
        self.send(
            self.http
                .post(self.url(&["me", "sub-accounts", username, "disable"], &[])),
        )
        .await
        .map(|_| ())
    }
}
