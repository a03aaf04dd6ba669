//! Key and IV derivation as `openssl enc` does it, and the first-block test that tells a right secret (and
//! digest) from a wrong one before a byte is written.

use std::fmt;

use a9s_core::secret::wipe;
use a9s_core::{Error, Result};
use openssl::hash::MessageDigest;
use openssl::symm::{Cipher, Crypter, Mode};

/// Length of `Salted__` plus the salt: the header `openssl enc` writes before the ciphertext.
pub const HEADER_LEN: usize = 16;
pub const MAGIC: &[u8; 8] = b"Salted__";
pub const BLOCK: usize = 16;

/// The digest given to `openssl enc -md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digest {
    Md5,
    Sha256,
    Sha1,
}

impl Digest {
    pub const ALL: [Digest; 3] = [Digest::Md5, Digest::Sha256, Digest::Sha1];

    pub fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha1 => "sha1",
        }
    }

    fn message_digest(self) -> MessageDigest {
        match self {
            Digest::Md5 => MessageDigest::md5(),
            Digest::Sha256 => MessageDigest::sha256(),
            Digest::Sha1 => MessageDigest::sha1(),
        }
    }
}

/// How key and IV come from the secret and the salt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kdf {
    /// `openssl enc -md D`: EVP_BytesToKey with one iteration (what the a9s Backup Manager uses, with md5).
    BytesToKey(Digest),
    /// `openssl enc -pbkdf2 -iter N -md D`.
    Pbkdf2 { digest: Digest, iter: u32 },
}

/// openssl's default for `-pbkdf2` without `-iter`.
pub const PBKDF2_DEFAULT_ITER: u32 = 10_000;

impl fmt::Display for Kdf {
    /// Said the way the operator would write it for `openssl enc`, since that is what they compare with.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kdf::BytesToKey(d) => write!(f, "-md {}", d.name()),
            Kdf::Pbkdf2 { digest, iter } => write!(f, "-pbkdf2 -iter {iter} -md {}", digest.name()),
        }
    }
}

/// AES-256 key and CBC IV, wiped when dropped.
pub struct KeyIv {
    pub key: [u8; 32],
    pub iv: [u8; 16],
}

impl Drop for KeyIv {
    fn drop(&mut self) {
        wipe(&mut self.key);
        wipe(&mut self.iv);
    }
}

impl fmt::Debug for KeyIv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyIv(***)")
    }
}

fn crypto_error(what: &str, e: openssl::error::ErrorStack) -> Error {
    Error::failure(format!("{what} failed in the OpenSSL library: {e}"))
}

/// Derives key and IV exactly as `openssl enc -aes-256-cbc` does.
pub fn derive(kdf: Kdf, secret: &[u8], salt: &[u8; 8]) -> Result<KeyIv> {
    let mut k = KeyIv { key: [0; 32], iv: [0; 16] };
    match kdf {
        Kdf::BytesToKey(d) => {
            let pair = openssl::pkcs5::bytes_to_key(Cipher::aes_256_cbc(), d.message_digest(), secret, Some(salt), 1)
                .map_err(|e| crypto_error("key derivation (EVP_BytesToKey)", e))?;
            let mut key = pair.key;
            let mut iv = pair.iv.unwrap_or_default();
            if key.len() != 32 || iv.len() != 16 {
                return Err(Error::failure("key derivation returned a key or IV of the wrong length"));
            }
            k.key.copy_from_slice(&key);
            k.iv.copy_from_slice(&iv);
            wipe(&mut key);
            wipe(&mut iv);
        }
        Kdf::Pbkdf2 { digest, iter } => {
            // openssl derives key‖IV as one 48-byte output.
            let mut both = [0u8; 48];
            openssl::pkcs5::pbkdf2_hmac(secret, salt, iter as usize, digest.message_digest(), &mut both)
                .map_err(|e| crypto_error("key derivation (PBKDF2)", e))?;
            k.key.copy_from_slice(&both[..32]);
            k.iv.copy_from_slice(&both[32..]);
            wipe(&mut both);
        }
    }
    Ok(k)
}

/// Decrypts one CBC block on its own (the first one, chained to the IV), without disturbing the stream.
pub fn decrypt_first_block(k: &KeyIv, block: &[u8; BLOCK]) -> Result<[u8; BLOCK]> {
    let mut c = Crypter::new(Cipher::aes_256_ecb(), Mode::Decrypt, &k.key, None)
        .map_err(|e| crypto_error("AES initialisation", e))?;
    c.pad(false);
    let mut out = [0u8; 2 * BLOCK];
    let n = c.update(block, &mut out).map_err(|e| crypto_error("AES decryption", e))?;
    debug_assert_eq!(n, BLOCK);
    let mut p = [0u8; BLOCK];
    for i in 0..BLOCK {
        p[i] = out[i] ^ k.iv[i];
    }
    Ok(p)
}

/// The streaming AES-256-CBC decrypter; padding is checked by the caller, who holds back the last block.
pub fn stream_crypter(k: &KeyIv) -> Result<Crypter> {
    let mut c = Crypter::new(Cipher::aes_256_cbc(), Mode::Decrypt, &k.key, Some(&k.iv))
        .map_err(|e| crypto_error("AES initialisation", e))?;
    c.pad(false);
    Ok(c)
}

/// A gzip member header: magic 1f 8b, method 8 (deflate), reserved flag bits zero. A wrong key passes this
/// by chance once in 2^27 tries, where openssl's padding check at the very end passes once in 256.
pub fn looks_like_gzip(p: &[u8]) -> bool {
    p.len() >= 4 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 0x08 && p[3] & 0xe0 == 0
}

/// Whether `kdf` turns the first ciphertext block into a gzip header.
pub fn yields_gzip(kdf: Kdf, secret: &[u8], salt: &[u8; 8], first: &[u8; BLOCK]) -> Result<bool> {
    let k = derive(kdf, secret, salt)?;
    Ok(looks_like_gzip(&decrypt_first_block(&k, first)?))
}

/// Checks the PKCS#7 padding of the last plaintext block and returns how many bytes to drop.
pub fn padding_len(last_block: &[u8]) -> Option<usize> {
    let n = *last_block.last()? as usize;
    if n == 0 || n > BLOCK || n > last_block.len() {
        return None;
    }
    last_block[last_block.len() - n..].iter().all(|&b| b as usize == n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    /// As `openssl enc -P` prints it.
    fn hex(b: &[u8]) -> String {
        a9s_core::encode::hex(b).to_ascii_uppercase()
    }

    /// Values printed by `openssl enc -aes-256-cbc -P -md D -S 0102030405060708 -pass pass:x` (OpenSSL 3.0).
    #[test]
    fn bytes_to_key_known_vectors() {
        let cases = [
            (
                Digest::Md5,
                "DF39DED3E3F345CEBB53BF088AAC6D3E3056C591D7268AA6DCBCB8CE622B9155",
                "E5326982A201989A05B46BE8792CFE3E",
            ),
            (
                Digest::Sha256,
                "9CE4918DC03D977F85D9A21AF197599D50616AAB9881D621B4CBBE88150905C7",
                "89A5CA2EF414C5E4C7CC227C991EFD64",
            ),
            (
                Digest::Sha1,
                "03F3925DFD39DEFA07EB13E3577B48E34E5CFADD3A437A16342B5B3291B827AE",
                "B89C52ECF7671333D72E9F972C46B837",
            ),
        ];
        for (d, key, iv) in cases {
            let k = derive(Kdf::BytesToKey(d), b"x", &SALT).unwrap();
            assert_eq!(hex(&k.key), key, "{d:?}");
            assert_eq!(hex(&k.iv), iv, "{d:?}");
        }
    }

    /// `openssl enc -aes-256-cbc -P -pbkdf2 [-iter 1000 -md md5] -S … -pass pass:…`.
    #[test]
    fn pbkdf2_known_vectors() {
        let k = derive(Kdf::Pbkdf2 { digest: Digest::Sha256, iter: PBKDF2_DEFAULT_ITER }, b"x", &SALT).unwrap();
        assert_eq!(hex(&k.key), "5C2BDDE12F9952B39C017D85CC3F009A0D1477AEE22C8E2D8E8F5DC54C2501F2");
        assert_eq!(hex(&k.iv), "FB02DB717D214067AA4F31F1D7F345CF");
        let salt = [0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18];
        let k = derive(Kdf::Pbkdf2 { digest: Digest::Md5, iter: 1000 }, b"hunter2", &salt).unwrap();
        assert_eq!(hex(&k.key), "8790309EE915DD850290A0B9F1332D695A9BF15B46DB615E1F2C5B988CEE695C");
        assert_eq!(hex(&k.iv), "545155DFE9B0A927B34A5779832C02F3");
    }

    /// The same against the openssl CLI installed here, for a secret and salt of our choosing, when it exists.
    #[test]
    fn bytes_to_key_matches_the_openssl_cli() {
        let salt = [0xde, 0xad, 0xbe, 0xef, 0x00, 0x11, 0x22, 0x33];
        for d in Digest::ALL {
            let out = match std::process::Command::new("openssl")
                .args(["enc", "-aes-256-cbc", "-P", "-md", d.name(), "-S", "deadbeef00112233", "-pass"])
                .arg("pass:NYHD8MVmA55HEqoaYHpQaxfwEMcQ1wkI")
                .output()
            {
                Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap(),
                _ => return, // no openssl CLI: the hardcoded vectors above still hold
            };
            let field = |name: &str| {
                out.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).expect("field")
            };
            let k = derive(Kdf::BytesToKey(d), b"NYHD8MVmA55HEqoaYHpQaxfwEMcQ1wkI", &salt).unwrap();
            assert_eq!(hex(&k.key), field("key="), "{d:?}");
            assert_eq!(hex(&k.iv), field("iv ="), "{d:?}");
        }
    }

    #[test]
    fn gzip_header_test() {
        assert!(looks_like_gzip(&[0x1f, 0x8b, 0x08, 0x00, 0, 0]));
        assert!(looks_like_gzip(&[0x1f, 0x8b, 0x08, 0x08]));
        assert!(!looks_like_gzip(&[0x1f, 0x8b, 0x08, 0x20]));
        assert!(!looks_like_gzip(&[0x1f, 0x8b, 0x07, 0x00]));
        assert!(!looks_like_gzip(&[0x1f, 0x8b]));
    }

    #[test]
    fn padding() {
        let mut b = [7u8; 16];
        b[15] = 1;
        assert_eq!(padding_len(&b), Some(1));
        assert_eq!(padding_len(&[16u8; 16]), Some(16));
        assert_eq!(padding_len(&[0u8; 16]), None);
        assert_eq!(padding_len(&[17u8; 16]), None);
        let mut b = [3u8; 16];
        b[13] = 2;
        assert_eq!(padding_len(&b), None);
    }

    #[test]
    fn first_block_round_trip() {
        let k = derive(Kdf::BytesToKey(Digest::Md5), b"x", &SALT).unwrap();
        let plain = [0x1f, 0x8b, 0x08, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let ct = openssl::symm::encrypt(Cipher::aes_256_cbc(), &k.key, Some(&k.iv), &plain).unwrap();
        let first: [u8; 16] = ct[..16].try_into().unwrap();
        assert_eq!(decrypt_first_block(&k, &first).unwrap(), plain);
        assert!(yields_gzip(Kdf::BytesToKey(Digest::Md5), b"x", &SALT, &first).unwrap());
        assert!(!yields_gzip(Kdf::BytesToKey(Digest::Sha256), b"x", &SALT, &first).unwrap());
        assert!(!yields_gzip(Kdf::BytesToKey(Digest::Md5), b"y", &SALT, &first).unwrap());
    }
}
