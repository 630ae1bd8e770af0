//! Computed columns (`name AS expression` in `CREATE TABLE`, Flink's virtual columns): each
//! expression is planned once, when the table is defined, against the table's physical and
//! metadata columns — an unknown column or an expression that does not type-check is refused
//! then, naming the column and the expression — and evaluated over each batch of rows read.
//! As in Flink, an expression may not use another computed column, and computed columns are not
//! written by `INSERT INTO` (they are not part of the table's physical schema).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

use crate::error::{invalid, Result};
use crate::prepass::ComputedItem;

/// A computed column, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Computed {
    pub name: String,
    /// As written, for messages.
    pub expression: String,
    value: Arc<dyn PhysicalExpr>,
}

/// A table's computed columns and where they stand among its columns.
#[derive(Debug, Clone)]
pub struct ComputedColumns {
    /// The columns the expressions read: physical and metadata, in declared order.
    read: SchemaRef,
    /// Every column, in declared order.
    schema: SchemaRef,
    /// For each column of `schema`: its index in `read`, or the computed column it is.
    sources: Vec<Source>,
}

#[derive(Debug, Clone)]
enum Source {
    Read(usize),
    Computed(Computed),
}

impl ComputedColumns {
    /// Plans `items` over the columns of `read`. `ctx` knows Flink's functions.
    pub fn plan(table: &str, read: SchemaRef, items: &[ComputedItem], ctx: &SessionContext) -> Result<Self> {
        let df_schema = DFSchema::try_from(Arc::clone(&read))?;
        let names = read.fields().iter().map(|field| field.as_ref().clone());
        // A name declared twice is refused after the expressions are checked (as Flink does):
        // here it is known once.
        let mut known: std::collections::HashSet<&str> =
            read.fields().iter().map(|field| field.name().as_str()).collect();
        let computed_names = items
            .iter()
            .filter(|item| known.insert(item.name.as_str()))
            .map(|item| Field::new(&item.name, DataType::Null, true));
        let with_names = DFSchema::try_from(Schema::new(names.chain(computed_names).collect::<Vec<_>>()))?;
        let mut fields: Vec<Field> = read.fields().iter().map(|field| field.as_ref().clone()).collect();
        let mut sources: Vec<Source> = (0..fields.len()).map(Source::Read).collect();
        for item in items {
            let refused = |cause: String| {
                invalid(format!(
                    "Invalid expression for computed column '{}' of table '{table}': {} ({cause})",
                    item.name, item.expression
                ))
            };
            // Read once more with the computed columns' names known, to say which one it uses.
            if let Ok(expr) = ctx.parse_sql_expr(&item.expression, &with_names) {
                let used = expr.column_refs();
                if let Some(other) = items.iter().find(|other| used.iter().any(|column| column.name == other.name)) {
                    return Err(refused(format!(
                        "it uses the computed column '{}'; a computed column can use physical and metadata columns \
                         only",
                        other.name
                    )));
                }
            }
            let expr = ctx.parse_sql_expr(&item.expression, &df_schema).map_err(|error| refused(error.to_string()))?;
            let value = ctx.create_physical_expr(expr, &df_schema).map_err(|error| refused(error.to_string()))?;
            let data_type = value.data_type(&read).map_err(|error| refused(error.to_string()))?;
            let position = item.position.min(fields.len());
            fields.insert(position, Field::new(&item.name, data_type, true));
            let computed = Computed { name: item.name.clone(), expression: item.expression.clone(), value };
            sources.insert(position, Source::Computed(computed));
        }
        Ok(ComputedColumns { read, schema: Arc::new(Schema::new(fields)), sources })
    }

    /// Every column, in declared order.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The columns decoded from a record and its metadata.
    pub fn read(&self) -> &SchemaRef {
        &self.read
    }

    pub fn columns(&self) -> impl Iterator<Item = &Computed> {
        self.sources.iter().filter_map(|source| match source {
            Source::Computed(computed) => Some(computed),
            Source::Read(_) => None,
        })
    }

    /// `rows` (of [`Self::read`]) with the computed columns added: rows of [`Self::schema`].
    pub fn complete(&self, rows: RecordBatch) -> Result<RecordBatch> {
        if self.sources.len() == self.read.fields().len() {
            return Ok(rows);
        }
        let count = rows.num_rows();
        let columns = self
            .sources
            .iter()
            .map(|source| match source {
                Source::Read(index) => Ok(Arc::clone(rows.column(*index))),
                Source::Computed(computed) => {
                    let value: ArrayRef = computed.value.evaluate(&rows)?.into_array(count)?;
                    Ok(value)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(count));
        Ok(RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)?)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::arrow::util::pretty::pretty_format_batches;

    use super::*;

    fn item(position: usize, name: &str, expression: &str) -> ComputedItem {
        ComputedItem { position, name: name.into(), expression: expression.into() }
    }

    fn read() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("price", DataType::Int64, true),
            Field::new("epoch_ms", DataType::Int64, true),
        ]))
    }

    fn plan(items: &[ComputedItem]) -> Result<ComputedColumns> {
        ComputedColumns::plan("t", read(), items, &crate::engine::session())
    }

    #[test]
    fn columns_are_typed_placed_as_declared_and_evaluated_per_batch() {
        let columns = plan(&[item(1, "ts", "TO_TIMESTAMP_LTZ(epoch_ms, 3)"), item(4, "total", "price * 2")]).unwrap();
        let names: Vec<&str> = columns.schema().fields().iter().map(|field| field.name().as_str()).collect();
        assert_eq!(names, ["id", "ts", "price", "epoch_ms", "total"]);
        assert_eq!(columns.schema().field(1).data_type(), &DataType::Timestamp(TimeUnit::Millisecond, None));
        let rows = RecordBatch::try_new(
            read(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int64Array::from(vec![Some(3), None])),
                Arc::new(Int64Array::from(vec![1_700_000_000_123, 0])),
            ],
        )
        .unwrap();
        let text = pretty_format_batches(&[columns.complete(rows).unwrap()]).unwrap().to_string();
        assert!(text.contains("| a  | 2023-11-14T22:13:20.123 | 3     | 1700000000123 | 6     |"), "{text}");
        assert!(text.contains("| b  | 1970-01-01T00:00:00     |       | 0             |       |"), "{text}");
    }

    #[test]
    fn unknown_columns_bad_types_and_computed_references_are_refused_by_name() {
        for (expression, named) in [
            ("TO_TIMESTAMP_LTZ(epoch, 3)", "epoch"),
            ("price * id", "Int64 * Utf8"),
            ("total + 1", "uses the computed column 'total'"),
        ] {
            let error = plan(&[item(3, "total", "price + 1"), item(4, "x", expression)]).unwrap_err().to_string();
            assert!(error.contains("computed column 'x' of table 't': "), "{error}");
            assert!(error.contains(named), "{expression}: {error}");
        }
    }
}
