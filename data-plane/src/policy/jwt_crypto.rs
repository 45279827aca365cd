//! The signatures of the `jwt` policy: a `jsonwebtoken` crypto provider on
//! ring (the library rustls already runs on here), so neither aws-lc-rs nor
//! the RustCrypto `rsa` crate is linked. Glue only: every check is ring's.
//!
//! - HMAC: `ring::hmac::verify` (constant time).
//! - RSA: PKCS#1 v1.5 and PSS, 2048 to 8192-bit keys (shorter ones fail).
//! - ECDSA: P-256 and P-384, the fixed `r || s` encoding of JWS (a DER
//!   signature fails).
//! - EdDSA: Ed25519.
//!
//! [`install`] makes it jsonwebtoken's process-wide provider; the policy
//! calls it before any token is read.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::ThumbprintHash;
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature as sig;
use ring::{digest, hmac};

static RING: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        // Only JWK *creation* from keys uses these; the gateway never does.
        rsa_pub_components_from_private_key: |_| Err(ErrorKind::UnsupportedAlgorithm.into()),
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::UnsupportedAlgorithm.into()),
        ec_pub_components_from_private_key: |_, _| Err(ErrorKind::UnsupportedAlgorithm.into()),
        ed_pub_components_from_private_key: |_, _| Err(ErrorKind::UnsupportedAlgorithm.into()),
        compute_digest,
    },
};

/// Makes the ring provider jsonwebtoken's default. Idempotent; if another
/// provider was installed first (nothing in this workspace does), that one
/// stays.
pub fn install() {
    let _ = RING.install_default();
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, Error> {
    let alg = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::UnsupportedAlgorithm.into()),
    };
    Ok(digest::digest(alg, data).as_ref().to_vec())
}

fn fail<E>(_: E) -> signature::Error {
    signature::Error::new()
}

fn hmac_alg(alg: Algorithm) -> Option<hmac::Algorithm> {
    match alg {
        Algorithm::HS256 => Some(hmac::HMAC_SHA256),
        Algorithm::HS384 => Some(hmac::HMAC_SHA384),
        Algorithm::HS512 => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

fn rsa_params(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    match alg {
        Algorithm::RS256 => Some(&sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => Some(&sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => Some(&sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => Some(&sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => Some(&sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => Some(&sig::RSA_PSS_2048_8192_SHA512),
        _ => None,
    }
}

/// Verifies with the key of the algorithm's family only: a family mismatch
/// (an RSA key offered for HS256) is an error before any byte is checked.
struct RingVerifier {
    alg: Algorithm,
    key: DecodingKey,
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    if key.family() != alg.family() {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(RingVerifier {
        alg: *alg,
        key: key.clone(),
    }))
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let alg = self.alg;
        if let Some(h) = hmac_alg(alg) {
            let secret = self.key.try_get_as_bytes().map_err(fail)?;
            return hmac::verify(&hmac::Key::new(h, secret), msg, signature).map_err(fail);
        }
        if let Some(params) = rsa_params(alg) {
            let result = match self.key.kind() {
                DecodingKeyKind::SecretOrDer(der) => {
                    sig::UnparsedPublicKey::new(params, der).verify(msg, signature)
                }
                DecodingKeyKind::RsaModulusExponent { n, e } => {
                    sig::RsaPublicKeyComponents { n, e }.verify(params, msg, signature)
                }
            };
            return result.map_err(fail);
        }
        let params: &'static dyn sig::VerificationAlgorithm = match alg {
            Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &sig::ED25519,
            _ => return Err(signature::Error::new()),
        };
        let public = self.key.try_get_as_bytes().map_err(fail)?;
        sig::UnparsedPublicKey::new(params, public)
            .verify(msg, signature)
            .map_err(fail)
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// Signing, for completeness of the provider and for the tests' tokens;
/// the gateway itself never signs.
struct RingSigner {
    alg: Algorithm,
    key: EncodingKey,
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if key.family() != alg.family() {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(RingSigner {
        alg: *alg,
        key: key.clone(),
    }))
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        let der = self.key.as_bytes();
        if let Some(h) = hmac_alg(self.alg) {
            return Ok(hmac::sign(&hmac::Key::new(h, der), msg).as_ref().to_vec());
        }
        let rsa: Option<&'static dyn sig::RsaEncoding> = match self.alg {
            Algorithm::RS256 => Some(&sig::RSA_PKCS1_SHA256),
            Algorithm::RS384 => Some(&sig::RSA_PKCS1_SHA384),
            Algorithm::RS512 => Some(&sig::RSA_PKCS1_SHA512),
            Algorithm::PS256 => Some(&sig::RSA_PSS_SHA256),
            Algorithm::PS384 => Some(&sig::RSA_PSS_SHA384),
            Algorithm::PS512 => Some(&sig::RSA_PSS_SHA512),
            _ => None,
        };
        if let Some(encoding) = rsa {
            let pair = sig::RsaKeyPair::from_der(der).map_err(fail)?;
            let mut out = vec![0; pair.public().modulus_len()];
            pair.sign(encoding, &rng, msg, &mut out).map_err(fail)?;
            return Ok(out);
        }
        let ecdsa = match self.alg {
            Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            Algorithm::EdDSA => {
                let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(fail)?;
                return Ok(pair.sign(msg).as_ref().to_vec());
            }
            _ => return Err(signature::Error::new()),
        };
        let pair = sig::EcdsaKeyPair::from_pkcs8(ecdsa, der, &rng).map_err(fail)?;
        Ok(pair.sign(&rng, msg).map_err(fail)?.as_ref().to_vec())
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}
