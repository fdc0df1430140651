use sqlx::AnyPool;

use crate::domain::Cents;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Provider {
    pub id: i64,
    pub name: String,
    pub coverage_area: String,
    #[sqlx(try_from = "i64")]
    pub cost_cents: Cents,
}

impl Provider {
    pub fn cost(&self) -> Cents {
        self.cost_cents
    }

    /// The catalogue's message for the coverage areas the shop ships with
    /// (stored in English); another area an operator added shows as stored.
    pub fn coverage_message_id(&self) -> Option<&'static str> {
        match self.coverage_area.as_str() {
            "International" => Some("coverage-international"),
            "National" => Some("coverage-national"),
            _ => None,
        }
    }
}

pub async fn list(pool: &AnyPool) -> sqlx::Result<Vec<Provider>> {
    sqlx::query_as("SELECT id, name, coverage_area, cost_cents FROM delivery_providers ORDER BY id")
        .fetch_all(pool)
        .await
}
