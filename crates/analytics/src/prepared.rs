//! A statement planned once and run many times: over each micro-batch, or over each window the
//! watermark closes. Parsing, planning and optimising a statement costs far more than running it
//! over a few thousand rows, so the physical plan reads a [`Feed`] — a table whose rows are set
//! just before each run — and is run again with DataFusion's `reset_plan_states` (how its
//! recursive queries re-run a plan). A statement with a stable function (`NOW()`,
//! `CURRENT_TIMESTAMP`, …) is still planned for every run: DataFusion folds those to the time the
//! plan was made.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::TableType;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{reset_plan_states, Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    collect, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};
use datafusion::prelude::SessionContext;
use parking_lot::Mutex;

use crate::error::Result;

/// The rows of the current run, shared by the table and the plans that scan it.
type Rows = Arc<Mutex<Vec<RecordBatch>>>;

/// A statement over one table, ready to run over any rows of that table's schema.
pub struct Prepared {
    ctx: SessionContext,
    select: String,
    rows: Rows,
    /// `None`: the statement has a stable function and is planned for every run.
    plan: Option<Arc<dyn ExecutionPlan>>,
}

impl Prepared {
    /// Registers `table` (of `schema`) in `ctx` as a [`Feed`] and plans `select` over it.
    pub async fn new(ctx: SessionContext, table: &str, schema: SchemaRef, select: &str) -> Result<Self> {
        let rows = Rows::default();
        ctx.register_table(table, Arc::new(Feed { schema, rows: Arc::clone(&rows) }))?;
        let frame = ctx.sql(select).await?;
        let plan = match has_stable_function(frame.logical_plan())? {
            true => None,
            false => Some(frame.create_physical_plan().await?),
        };
        Ok(Prepared { ctx, select: select.to_string(), rows, plan })
    }

    /// Runs the statement over `batch`.
    pub async fn run(&self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        *self.rows.lock() = vec![batch];
        let plan = match &self.plan {
            Some(plan) => reset_plan_states(Arc::clone(plan)).map_err(Into::into),
            None => match self.ctx.sql(&self.select).await {
                Ok(frame) => frame.create_physical_plan().await.map_err(Into::into),
                Err(error) => Err(error.into()),
            },
        };
        let results = match plan {
            Ok(plan) => collect(plan, self.ctx.task_ctx()).await.map_err(Into::into),
            Err(error) => Err(error),
        };
        self.rows.lock().clear();
        results
    }
}

/// Whether any expression of `plan` (subqueries included) calls a stable function.
fn has_stable_function(plan: &LogicalPlan) -> Result<bool> {
    let mut stable = false;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|expr| {
                stable |= matches!(expr, Expr::ScalarFunction(call) if call.func.signature().volatility == Volatility::Stable);
                Ok(if stable { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
            })
        })
    })?;
    Ok(stable)
}

/// A table whose rows are whatever the current run was given.
#[derive(Debug)]
struct Feed {
    schema: SchemaRef,
    rows: Rows,
}

#[async_trait::async_trait]
impl TableProvider for Feed {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let projected = match projection {
            Some(columns) => Arc::new(self.schema.project(columns)?),
            None => Arc::clone(&self.schema),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&projected)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(FeedExec {
            schema: Arc::clone(&self.schema),
            projection: projection.cloned(),
            rows: Arc::clone(&self.rows),
            properties: Arc::new(properties),
        }))
    }
}

/// The scan of a [`Feed`]: the current run's rows, read when the plan executes (not when it is
/// made, as DataFusion's memory scan does). No statistics: the rows change from run to run.
struct FeedExec {
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    rows: Rows,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for FeedExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedExec").field("projection", &self.projection).finish()
    }
}

impl DisplayAs for FeedExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeedExec: projection={:?}", self.projection)
    }
}

impl ExecutionPlan for FeedExec {
    fn name(&self) -> &str {
        "FeedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> datafusion::common::Result<TreeNodeRecursion>,
    ) -> datafusion::common::Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)] // required by the trait (DataFusion 55), see `replace_children`
    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> datafusion::common::Result<SendableRecordBatchStream> {
        let rows = self.rows.lock().clone();
        Ok(Box::pin(MemoryStream::try_new(rows, Arc::clone(&self.schema), self.projection.clone())?))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;

    use super::*;

    fn batch(rows: &[(&str, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let keys = StringArray::from(rows.iter().map(|(key, _)| *key).collect::<Vec<_>>());
        let values = Int64Array::from(rows.iter().map(|(_, v)| *v).collect::<Vec<_>>());
        RecordBatch::try_new(schema, vec![Arc::new(keys), Arc::new(values)]).unwrap()
    }

    async fn text(prepared: &Prepared, rows: &[(&str, i64)]) -> String {
        pretty_format_batches(&prepared.run(batch(rows)).await.unwrap()).unwrap().to_string()
    }

    #[tokio::test]
    async fn one_plan_runs_over_each_batch_it_is_given() {
        let sql = "SELECT k, COUNT(*) AS n, SUM(v) AS total FROM t WHERE v > 0 GROUP BY k ORDER BY k LIMIT 2";
        let prepared = Prepared::new(crate::engine::session(), "t", batch(&[]).schema(), sql).await.unwrap();
        assert!(prepared.plan.is_some());
        let first = text(&prepared, &[("a", 1), ("b", 2), ("a", 3), ("c", 9)]).await;
        assert!(first.contains("| a | 2 | 4     |") && first.contains("| b | 1 | 2     |"), "{first}");
        assert!(!first.contains("| c"), "{first}");
        // A second run sees only its own rows (the TopK's filter from the first run is reset).
        let second = text(&prepared, &[("c", 5), ("z", 1), ("a", -1)]).await;
        assert!(second.contains("| c | 1 | 5     |") && second.contains("| z | 1 | 1     |"), "{second}");
    }

    #[tokio::test]
    async fn statements_with_stable_functions_are_planned_per_run() {
        let prepared =
            Prepared::new(crate::engine::session(), "t", batch(&[]).schema(), "SELECT k, NOW() AS at FROM t")
                .await
                .unwrap();
        assert!(prepared.plan.is_none());
        assert!(text(&prepared, &[("a", 1)]).await.contains("| a |"));
    }
}
