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
}

pub async fn list(pool: &AnyPool) -> sqlx::Result<Vec<Provider>> {
    sqlx::query_as("SELECT id, name, coverage_area, cost_cents FROM delivery_providers ORDER BY id")
        .fetch_all(pool)
        .await
}
