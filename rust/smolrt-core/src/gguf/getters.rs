//! Typed metadata access. Integer getters accept any integer encoding whose value fits, because
//! converters disagree on widths (u32 vs u64 vs i32) for the same key.

use super::{GgufFile, MetadataValue};
use crate::{Error, Result};

fn missing(key: &str) -> Error {
    Error::model_load(format!("metadata key '{key}' is missing"))
}

fn wrong_type(key: &str, found: &MetadataValue, expected: &str) -> Error {
    Error::model_load(format!(
        "metadata key '{key}' has type {}, expected {expected}",
        found.type_name()
    ))
}

fn int_as<T: TryFrom<i128>>(key: &str, v: &MetadataValue, expected: &str) -> Result<T> {
    let n = v.as_i128().ok_or_else(|| wrong_type(key, v, expected))?;
    T::try_from(n).map_err(|_| {
        Error::model_load(format!(
            "metadata key '{key}' is {n}, which does not fit in {expected}"
        ))
    })
}

fn float_as_f32(key: &str, v: &MetadataValue) -> Result<f32> {
    match *v {
        MetadataValue::F32(x) => Ok(x),
        MetadataValue::F64(x) => Ok(x as f32),
        _ => Err(wrong_type(key, v, "f32")),
    }
}

fn array<'a>(key: &str, v: &'a MetadataValue) -> Result<&'a [MetadataValue]> {
    match v {
        MetadataValue::Array(items) => Ok(items),
        _ => Err(wrong_type(key, v, "array")),
    }
}

impl GgufFile {
    fn require(&self, key: &str) -> Result<&MetadataValue> {
        self.get(key).ok_or_else(|| missing(key))
    }

    pub fn get_u32(&self, key: &str) -> Result<u32> {
        int_as(key, self.require(key)?, "u32")
    }

    pub fn get_u64(&self, key: &str) -> Result<u64> {
        int_as(key, self.require(key)?, "u64")
    }

    pub fn get_f32(&self, key: &str) -> Result<f32> {
        float_as_f32(key, self.require(key)?)
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            MetadataValue::Bool(b) => Ok(*b),
            v => Err(wrong_type(key, v, "bool")),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            MetadataValue::String(s) => Ok(s),
            v => Err(wrong_type(key, v, "string")),
        }
    }

    pub fn get_opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.get(key).map(|v| int_as(key, v, "u32")).transpose()
    }

    pub fn get_opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.get(key).map(|v| float_as_f32(key, v)).transpose()
    }

    pub fn get_opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key).map(|_| self.get_bool(key)).transpose()
    }

    pub fn get_opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.get(key).map(|_| self.get_str(key)).transpose()
    }

    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        let items = array(key, self.require(key)?)?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                MetadataValue::String(s) => Ok(s.as_str()),
                _ => Err(array_element_error(key, i, v, "string")),
            })
            .collect()
    }

    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        let items = array(key, self.require(key)?)?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let n = v
                    .as_i128()
                    .ok_or_else(|| array_element_error(key, i, v, "i32"))?;
                i32::try_from(n).map_err(|_| {
                    Error::model_load(format!(
                        "metadata key '{key}' element {i} is {n}, which does not fit in i32"
                    ))
                })
            })
            .collect()
    }

    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        let items = array(key, self.require(key)?)?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match *v {
                MetadataValue::F32(x) => Ok(x),
                MetadataValue::F64(x) => Ok(x as f32),
                _ => Err(array_element_error(key, i, v, "f32")),
            })
            .collect()
    }
}

fn array_element_error(key: &str, index: usize, found: &MetadataValue, expected: &str) -> Error {
    Error::model_load(format!(
        "metadata key '{key}' element {index} has type {}, expected {expected}",
        found.type_name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use MetadataValue as V;

    fn file() -> GgufFile {
        GgufFile::with_metadata(vec![
            ("small", V::U8(7)),
            ("neg", V::I32(-1)),
            ("big", V::U64(u64::MAX)),
            ("eps", V::F64(1e-5)),
            ("name", V::String("llama".into())),
            ("flag", V::Bool(true)),
            (
                "toks",
                V::Array(vec![V::String("a".into()), V::String("b".into())]),
            ),
            ("ids", V::Array(vec![V::U8(1), V::I64(-2)])),
            ("wide", V::Array(vec![V::I64(1 << 40)])),
            ("scores", V::Array(vec![V::F32(0.5), V::F64(-1.0)])),
        ])
    }

    #[test]
    fn integers_widen_and_narrow_when_they_fit() {
        let f = file();
        assert_eq!(f.get_u32("small").unwrap(), 7);
        assert_eq!(f.get_u64("small").unwrap(), 7);
        assert!(f
            .get_u32("neg")
            .unwrap_err()
            .message
            .contains("does not fit in u32"));
        assert!(f.get_u32("big").unwrap_err().message.contains("'big'"));
        assert_eq!(f.get_u64("big").unwrap(), u64::MAX);
    }

    #[test]
    fn missing_and_wrong_type_messages() {
        let f = file();
        assert_eq!(
            f.get_u32("nope").unwrap_err().message,
            "metadata key 'nope' is missing"
        );
        assert_eq!(
            f.get_str("small").unwrap_err().message,
            "metadata key 'small' has type u8, expected string"
        );
        assert_eq!(
            f.get_bool("name").unwrap_err().code,
            crate::ErrorCode::ModelLoad
        );
        assert!(f.get_f32("small").is_err());
    }

    #[test]
    fn optional_getters() {
        let f = file();
        assert_eq!(f.get_opt_u32("nope").unwrap(), None);
        assert_eq!(f.get_opt_u32("small").unwrap(), Some(7));
        assert_eq!(f.get_opt_f32("eps").unwrap(), Some(1e-5));
        assert_eq!(f.get_opt_bool("flag").unwrap(), Some(true));
        assert_eq!(f.get_opt_str("name").unwrap(), Some("llama"));
        assert!(f.get_opt_str("flag").is_err());
    }

    #[test]
    fn array_getters() {
        let f = file();
        assert_eq!(f.get_str_array("toks").unwrap(), vec!["a", "b"]);
        assert_eq!(f.get_i32_array("ids").unwrap(), vec![1, -2]);
        assert!(f
            .get_i32_array("wide")
            .unwrap_err()
            .message
            .contains("element 0"));
        assert_eq!(f.get_f32_array("scores").unwrap(), vec![0.5, -1.0]);
        let e = f.get_str_array("ids").unwrap_err();
        assert!(e.message.contains("element 0 has type u8"), "{}", e.message);
        assert!(f.get_str_array("name").is_err());
    }
}
