//! The stored format shared with every backend (pulsecheck_core::storage::encoding),
//! and what only SQLite needs: binding an HTTP version, and reading schema 1's phases.

pub(crate) use pulsecheck_core::storage::encoding::*;

/// An HTTP version bound as its code when it has one, else as its text.
pub(crate) struct SqlHttpVersion<'a>(pub HttpVersion<'a>);

impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for SqlHttpVersion<'q> {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Sqlite as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match self.0 {
            HttpVersion::Code(code) => <i64 as sqlx::Encode<sqlx::Sqlite>>::encode_by_ref(&code, buf),
            HttpVersion::Text(text) => <&str as sqlx::Encode<sqlx::Sqlite>>::encode_by_ref(&text, buf),
        }
    }
}

impl sqlx::Type<sqlx::Sqlite> for SqlHttpVersion<'_> {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <i64 as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

/// Phases of a row converted from schema 1: "dns,connect,tls,ttfb,transfer,rtt".
pub(crate) fn parse_phases_text(text: &str) -> Option<Phases> {
    let mut phases: Phases = [None; 6];
    let mut parts = text.split(',');
    for phase in phases.iter_mut() {
        let part = parts.next()?;
        if !part.is_empty() {
            *phase = Some(part.parse().ok()?);
        }
    }
    parts.next().is_none().then_some(phases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_1_phases() {
        assert_eq!(
            parse_phases_text("1500,,,2000,,"),
            Some([Some(1_500), None, None, Some(2_000), None, None])
        );
        assert_eq!(parse_phases_text("x,,,,,"), None);
    }
}
