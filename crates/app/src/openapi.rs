//! The OpenAPI 3 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::Problem;
use crate::{account, api, approval, assets, auditlog, kms, kms_backup, mfa, sessions};

#[derive(OpenApi)]
#[openapi(
    info(title = "Parapet API", description = "The operational-security control plane (ITU-T X.1642)."),
    paths(
        api::login, api::logout, api::whoami,
        api::list_tenants, api::create_tenant, api::get_tenant, api::suspend_tenant, api::activate_tenant,
        api::list_users, api::create_user, api::disable_user, api::enable_user,
        api::create_token, api::list_tokens, api::revoke_token, api::list_audit,
        auditlog::public_key, auditlog::checkpoint, auditlog::checkpoints, auditlog::tile,
        auditlog::inclusion, auditlog::consistency, auditlog::entries,
        auditlog::access_report_endpoint,
        sessions::own_sessions, sessions::own_history, sessions::tenant_sessions,
        sessions::revoke_user_sessions, sessions::revoke_session,
        assets::list_assets, assets::create_asset, assets::get_asset, assets::update_asset,
        assets::delete_asset, assets::set_health, assets::summary, assets::import, assets::related,
        account::get_policy, account::set_policy, account::list_accounts, account::unlock,
        account::change_password, account::dormancy_sweep, account::account_report,
        mfa::status, mfa::begin, mfa::confirm, mfa::remove, mfa::reset,
        kms::status, kms::init, kms::unseal, kms::seal, kms::receipt_key, kms::create_key,
        kms::list_keys, kms::get_key, kms::update_key, kms::rotate, kms::disable, kms::enable,
        kms::schedule_deletion, kms::cancel_deletion, kms::receipt, kms::encrypt, kms::decrypt,
        kms::rewrap, kms::datakey, kms::sign, kms::verify, kms::hmac, kms::verify_hmac,
        kms::encrypt_batch, kms::decrypt_batch, kms::export, kms::encryption,
        kms_backup::backup, kms_backup::restore, kms_backup::wrapping_key, kms_backup::import_key,
        approval::list, approval::create, approval::approve, approval::reject,
        approval::change_role,
    ),
    components(schemas(Problem, api::TenantView, api::UserView, api::LoginRequest, api::LoginResponse,
        api::CreateTenant, api::CreateUser, api::CreateToken, api::TokenCreated, api::CredentialView,
        auditlog::CheckpointView, auditlog::InclusionProof, auditlog::ConsistencyProof,
        auditlog::ProvenEntry, sessions::SessionView, sessions::RevokeSessions,
        sessions::Revoked, assets::AssetView, assets::AssetInput, assets::SoftwareView,
        assets::HealthInput, assets::HealthSummary, assets::RelatedView,
        assets::SoftwareMatchView, assets::TenantCount, account::PolicyView, account::AccountView, account::ChangePassword,
        account::SweepView, mfa::MfaView, mfa::TotpEnrolmentView, mfa::ConfirmTotp,
        mfa::RecoveryCodes, mfa::RemoveTotp, kms::SealView, kms::InitRequest, kms::InitResponse,
        kms::UnsealRequest, kms::ReceiptKey, kms::KeyView, kms::VersionView, kms::KeyDetail,
        kms::CreateKey, kms::UpdateKey, kms::ScheduleDeletion, kms::ReceiptView,
        kms::EncryptRequest, kms::CiphertextView, kms::DecryptRequest, kms::PlaintextView,
        kms::DataKeyRequest, kms::DataKeyView, kms::MessageRequest, kms::SignatureView,
        kms::VerifyRequest, kms::Valid, kms::MacView, kms::VerifyMacRequest, kms::EncryptBatch,
        kms::DecryptBatch, kms::BatchItem, kms::BatchResult, kms::ExportedKey,
        kms::ExportedVersion, kms::EncryptionStatement, kms::InTransit, kms::DisclosureItem,
        kms_backup::RecipientSpec, kms_backup::BackupRequest, kms_backup::BackupResponse,
        kms_backup::RecoverySpec, kms_backup::RestoreRequest, kms_backup::RestoredTenant,
        kms_backup::RestoreResponse, kms_backup::WrappingKeyView, kms_backup::ImportKey,
        account::AccountReportView, account::FlaggedView, approval::ApprovalView, approval::NewApproval,
        approval::Decision, approval::RoleChange)),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
