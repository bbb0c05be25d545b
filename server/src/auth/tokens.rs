//! Access tokens: EdDSA (Ed25519) JWTs with the algorithm pinned and `exp`,
//! `iss`, `aud` and `sub` required. Refresh tokens are opaque random strings,
//! stored hashed, single use.

use crate::clock::Clock;
use base64::Engine;
use callcenter_proto::Role;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What an access token says. `exp`, `nbf` and `iat` are Unix seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    /// The session (login) this token belongs to; revoked on logout.
    pub sid: String,
    pub role: Role,
}

/// Tolerance for clock differences between nodes, in seconds.
const LEEWAY_SECONDS: i64 = 5;

pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl_seconds: i64,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed, unsigned or signed with another key or algorithm")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// A new Ed25519 private key as PKCS#8 PEM.
pub fn generate_private_key_pem() -> String {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    SigningKey::from_bytes(&seed)
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an Ed25519 key encodes")
        .to_string()
}

impl TokenService {
    pub fn new(
        private_key_pem: &str,
        issuer: &str,
        audience: &str,
        access_ttl_seconds: u64,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let signing = SigningKey::from_pkcs8_pem(private_key_pem).map_err(|e| {
            anyhow::anyhow!("the JWT private key is not an Ed25519 PKCS#8 PEM: {e}")
        })?;
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| anyhow::anyhow!("public key: {e}"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // Expiry and not-before are checked below against the injectable
        // clock, so the whole server agrees on one time.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Ok(TokenService {
            encoding: EncodingKey::from_ed_pem(private_key_pem.as_bytes())?,
            decoding: DecodingKey::from_ed_pem(public_pem.as_bytes())?,
            validation,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            access_ttl_seconds: access_ttl_seconds as i64,
            clock,
        })
    }

    pub fn access_ttl_seconds(&self) -> u64 {
        self.access_ttl_seconds as u64
    }

    pub fn issue(&self, user_id: i64, role: Role, session_id: &str) -> anyhow::Result<String> {
        let now = self.clock.now_ms() / 1000;
        let claims = Claims {
            sub: user_id.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + self.access_ttl_seconds,
            nbf: now,
            iat: now,
            sid: session_id.to_string(),
            role,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        let now = self.clock.now_ms() / 1000;
        if claims.exp + LEEWAY_SECONDS <= now {
            return Err(TokenError::Expired);
        }
        if claims.nbf - LEEWAY_SECONDS > now {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

/// A new opaque refresh token and the hash that is stored.
pub fn new_refresh_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = refresh_hash(&token);
    (token, hash)
}

pub fn refresh_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new session id.
pub fn new_session_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
