//! Items of a DynamoDB table: read with one consistent `Scan` (paginated), written in
//! `TransactWriteItems` of up to 100 writes, each write conditional on the item being exactly
//! what the read saw.
//!
//! Why transactions and not `BatchWriteItem`: a batch write cannot carry a condition, so it
//! would overwrite a row changed out of band since the read. Why not conditional single
//! writes in parallel: when one of them fails its condition, the others already in flight
//! still land — "nothing written after the conflict" would not hold. A transaction is
//! all-or-nothing: when one condition fails, none of its writes happen, the cancellation
//! reasons name the item, and no later transaction is sent. Transactions cost twice the write
//! capacity of plain writes; a config set is small and changes rarely.
//!
//! The condition of each write: a new item must not exist (`attribute_not_exists` on the
//! partition key); a changed, adopted or deleted item must still hold every attribute the read
//! saw, with the same value (and the same owner mark, or none when adopted). Changed items are
//! written with `UpdateItem` semantics (`SET` what differs, `REMOVE` what the source dropped),
//! so an attribute added out of band after the read is not lost either. Each transaction
//! carries an idempotency token made from its content: the SDK's retry of a transaction whose
//! answer was lost does not apply it twice.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use deployer_core::{DeployError, Progress, progress::Phase};
use sha2::{Digest, Sha256};

use crate::aws_error;
use crate::diff::{LiveItem, Op};
use crate::set::{Item, OWNER, item_id};
use crate::value::{Value, canonical_number};

/// The most writes in one transaction.
pub const MAX_TRANSACTION: usize = 100;
/// DynamoDB's limit on a transaction's size is 4 MB; chunks stay below it.
const MAX_TRANSACTION_BYTES: usize = 3 * 1024 * 1024;

/// How often, and how patiently, a transaction cancelled only for throttling or a conflict
/// with another transaction is sent again.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts in all.
    pub attempts: u32,
    /// The first pause; it doubles up to two seconds.
    pub first_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 8,
            first_delay: Duration::from_millis(100),
        }
    }
}

/// What the table holds, with each item's raw attributes (the values its write conditions
/// compare with).
#[derive(Clone, Debug, Default)]
pub struct TableRead {
    /// The items that carry every key attribute, by id.
    pub items: BTreeMap<String, LiveItem>,
    /// Their attributes as read.
    pub raw: BTreeMap<String, HashMap<String, AttributeValue>>,
    /// `Scan` pages read.
    pub pages: usize,
}

/// One table.
#[derive(Clone, Debug)]
pub struct Table {
    client: aws_sdk_dynamodb::Client,
    name: String,
    key: Vec<String>,
    retry: Retry,
}

/// What writing a diff did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Items written (added, changed, adopted).
    pub put: usize,
    /// Items deleted.
    pub deleted: usize,
    /// Transactions committed.
    pub transactions: usize,
}

impl Table {
    /// The table `name` with key attributes `key`.
    pub fn new(client: aws_sdk_dynamodb::Client, name: String, key: Vec<String>) -> Self {
        Table {
            client,
            name,
            key,
            retry: Retry::default(),
        }
    }

    /// With another retry policy for cancelled transactions.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The table name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads every item (a consistent, paginated `Scan`).
    pub async fn read(&self) -> Result<TableRead, DeployError> {
        let mut read = TableRead::default();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.name)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|error| {
                    if matches!(
                        error.as_service_error(),
                        Some(
                            aws_sdk_dynamodb::operation::scan::ScanError::ResourceNotFoundException(
                                _
                            )
                        )
                    ) {
                        DeployError::NotFound {
                            what: format!("DynamoDB table {}", self.name),
                            hint: "check `dynamodb.table` (or its lookup) and the region".into(),
                        }
                    } else {
                        aws_error::api("Scan", &error)
                    }
                })?;
            read.pages += 1;
            for raw in page.items() {
                let mut attributes: BTreeMap<String, Value> = raw
                    .iter()
                    .map(|(k, v)| (k.clone(), from_attribute(v)))
                    .collect();
                let owner = match attributes.remove(OWNER) {
                    Some(Value::String(owner)) => Some(owner),
                    Some(other) => Some(other.to_string()),
                    None => None,
                };
                let Some(id) = item_id(&self.key, &attributes) else {
                    continue;
                };
                read.raw.insert(id.clone(), raw.clone());
                read.items.insert(
                    id.clone(),
                    LiveItem {
                        id,
                        attributes,
                        owner,
                        version: None,
                    },
                );
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(read),
            }
        }
    }

    /// Writes `ops` (read as `read`) marked with `owner`, in transactions of up to
    /// [`MAX_TRANSACTION`], in order. The first write whose item changed since the read stops
    /// everything: its transaction is not applied and no later one is sent.
    pub async fn write(
        &self,
        ops: &[Op],
        read: &TableRead,
        owner: &str,
        set_id: &str,
        progress: &Progress,
    ) -> Result<Written, DeployError> {
        let mut written = Written::default();
        let chunks = chunks(ops);
        let total = ops.len();
        for (index, chunk) in chunks.iter().enumerate() {
            let items: Vec<TransactWriteItem> = chunk
                .iter()
                .map(|op| self.transact_item(op, read, owner))
                .collect::<Result<_, _>>()?;
            let token = token(set_id, index, chunk);
            self.commit(
                items,
                &token,
                chunk,
                written.put + written.deleted,
                total,
                progress,
            )
            .await?;
            for op in chunk {
                match op {
                    Op::Put { .. } => written.put += 1,
                    Op::Delete { .. } => written.deleted += 1,
                }
            }
            written.transactions += 1;
            progress.emit(
                Phase::Apply,
                format!(
                    "wrote {} of {total} items to {} (transaction {} of {})",
                    written.put + written.deleted,
                    self.name,
                    index + 1,
                    chunks.len()
                ),
            );
        }
        Ok(written)
    }

    async fn commit(
        &self,
        items: Vec<TransactWriteItem>,
        token: &str,
        chunk: &[&Op],
        done: usize,
        total: usize,
        progress: &Progress,
    ) -> Result<(), DeployError> {
        let mut delay = self.retry.first_delay;
        for attempt in 1..=self.retry.attempts {
            progress.before_mutation("TransactWriteItems")?;
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(token)
                .send()
                .await;
            let error = match sent {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            let reasons: Vec<Option<String>> = match error.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            if let Some(at) = reasons
                .iter()
                .position(|code| code.as_deref() == Some("ConditionalCheckFailed"))
            {
                let id = chunk.get(at).map_or("?", |op| op.id());
                return Err(DeployError::RolloutFailed {
                    reason: format!(
                        "item {id} of table {} changed since this deploy read it (an out-of-band write): it was not overwritten, and nothing after it was written ({done} of {total} writes were applied before it); run the deploy again to plan from what the table holds now",
                        self.name
                    ),
                    events: Vec::new(),
                });
            }
            let throttled = if reasons.is_empty() {
                aws_error::throttled(&error)
            } else {
                reasons
                    .iter()
                    .flatten()
                    .any(|c| aws_error::is_throttling_reason(c))
                    && reasons
                        .iter()
                        .flatten()
                        .all(|c| c == "None" || aws_error::is_throttling_reason(c))
            };
            if !throttled || attempt == self.retry.attempts {
                let mut failure = aws_error::api("TransactWriteItems", &error);
                if let DeployError::Api { message, .. } = &mut failure {
                    let codes: Vec<&str> = reasons.iter().flatten().map(String::as_str).collect();
                    if !codes.is_empty() {
                        message.push_str(&format!(" (reasons: {})", codes.join(", ")));
                    }
                    if throttled {
                        message.push_str(&format!(" (still throttled after {attempt} attempts)"));
                    }
                }
                return Err(failure);
            }
            progress.detail(
                Phase::Apply,
                format!("transaction throttled (attempt {attempt}); trying again"),
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        Err(DeployError::api(
            "TransactWriteItems",
            None,
            "no attempt was made",
        ))
    }

    fn key_of(&self, attributes: &BTreeMap<String, Value>) -> HashMap<String, AttributeValue> {
        self.key
            .iter()
            .filter_map(|k| Some((k.clone(), to_attribute(attributes.get(k)?))))
            .collect()
    }

    fn transact_item(
        &self,
        op: &Op,
        read: &TableRead,
        owner: &str,
    ) -> Result<TransactWriteItem, DeployError> {
        let build = |what: &str, error: aws_sdk_dynamodb::error::BuildError| {
            DeployError::Mismatch(format!(
                "cannot build the {what} of item {}: {error}",
                op.id()
            ))
        };
        let mut names = Names::default();
        Ok(match op {
            Op::Put {
                item,
                expected: None,
            } => {
                let mut attributes: HashMap<String, AttributeValue> = item
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), to_attribute(v)))
                    .collect();
                attributes.insert(OWNER.into(), AttributeValue::S(owner.into()));
                let pk = names.name(&self.key[0]);
                let put = Put::builder()
                    .table_name(&self.name)
                    .set_item(Some(attributes))
                    .condition_expression(format!("attribute_not_exists({pk})"))
                    .set_expression_attribute_names(Some(names.names))
                    .build()
                    .map_err(|e| build("Put", e))?;
                TransactWriteItem::builder().put(put).build()
            }
            Op::Put {
                item,
                expected: Some(held),
            } => {
                let condition = self.unchanged_since_read(held, read, &mut names);
                let (set, remove) = update(&self.key, item, held, owner, &mut names);
                let mut expression = String::new();
                if !set.is_empty() {
                    expression.push_str(&format!("SET {}", set.join(", ")));
                }
                if !remove.is_empty() {
                    expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
                }
                let update = Update::builder()
                    .table_name(&self.name)
                    .set_key(Some(self.key_of(&item.attributes)))
                    .update_expression(expression.trim())
                    .condition_expression(condition)
                    .set_expression_attribute_names(Some(names.names))
                    .set_expression_attribute_values(Some(names.values))
                    .build()
                    .map_err(|e| build("Update", e))?;
                TransactWriteItem::builder().update(update).build()
            }
            Op::Delete { expected } => {
                let condition = self.unchanged_since_read(expected, read, &mut names);
                let delete = Delete::builder()
                    .table_name(&self.name)
                    .set_key(Some(self.key_of(&expected.attributes)))
                    .condition_expression(condition)
                    .set_expression_attribute_names(Some(names.names))
                    .set_expression_attribute_values(
                        (!names.values.is_empty()).then_some(names.values),
                    )
                    .build()
                    .map_err(|e| build("Delete", e))?;
                TransactWriteItem::builder().delete(delete).build()
            }
        })
    }

    /// `#a = :a AND …` over every attribute the read saw (the owner mark included, or its
    /// absence).
    fn unchanged_since_read(&self, held: &LiveItem, read: &TableRead, names: &mut Names) -> String {
        let mut terms = Vec::new();
        let raw = read.raw.get(&held.id);
        let mut attributes: Vec<(String, AttributeValue)> = match raw {
            Some(raw) => raw.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            None => held
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), to_attribute(v)))
                .collect(),
        };
        attributes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut owner_seen = false;
        for (name, value) in attributes {
            owner_seen |= name == OWNER;
            let n = names.name(&name);
            let v = names.value(value);
            terms.push(format!("{n} = {v}"));
        }
        if !owner_seen {
            let n = names.name(OWNER);
            terms.push(format!("attribute_not_exists({n})"));
        }
        terms.join(" AND ")
    }
}

/// `SET` and `REMOVE` clauses turning `held` into `item` (key attributes untouched).
fn update(
    key: &[String],
    item: &Item,
    held: &LiveItem,
    owner: &str,
    names: &mut Names,
) -> (Vec<String>, Vec<String>) {
    let mut set = Vec::new();
    let mut remove = Vec::new();
    for (name, value) in &item.attributes {
        if key.contains(name) || held.attributes.get(name) == Some(value) {
            continue;
        }
        let n = names.name(name);
        let v = names.value(to_attribute(value));
        set.push(format!("{n} = {v}"));
    }
    for name in held.attributes.keys() {
        if !key.contains(name) && !item.attributes.contains_key(name) {
            remove.push(names.name(name));
        }
    }
    if held.owner.as_deref() != Some(owner) {
        let n = names.name(OWNER);
        let v = names.value(AttributeValue::S(owner.into()));
        set.push(format!("{n} = {v}"));
    }
    (set, remove)
}

/// Expression placeholders.
#[derive(Default)]
struct Names {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    by_name: HashMap<String, String>,
}

impl Names {
    fn name(&mut self, name: &str) -> String {
        if let Some(placeholder) = self.by_name.get(name) {
            return placeholder.clone();
        }
        let placeholder = format!("#a{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_owned());
        self.by_name.insert(name.to_owned(), placeholder.clone());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }
}

/// The ops in transactions: at most [`MAX_TRANSACTION`] writes and about 3 MB each.
fn chunks(ops: &[Op]) -> Vec<Vec<&Op>> {
    let mut chunks: Vec<Vec<&Op>> = Vec::new();
    let mut bytes = 0;
    for op in ops {
        let size = match op {
            Op::Put { item, expected } => {
                size(&item.attributes) + expected.as_ref().map_or(0, |h| size(&h.attributes))
            }
            Op::Delete { expected } => size(&expected.attributes),
        };
        let full = chunks
            .last()
            .is_none_or(|c| c.len() >= MAX_TRANSACTION || bytes + size > MAX_TRANSACTION_BYTES);
        if full {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(last) = chunks.last_mut() {
            last.push(op);
        }
    }
    chunks
}

fn size(attributes: &BTreeMap<String, Value>) -> usize {
    attributes
        .iter()
        .map(|(k, v)| k.len() + v.to_typed().to_string().len())
        .sum()
}

/// The idempotency token of a transaction: its content, so that the same writes under the same
/// token are always the same request.
fn token(set_id: &str, index: usize, chunk: &[&Op]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(set_id.as_bytes());
    hasher.update(index.to_le_bytes());
    for op in chunk {
        let text = match op {
            Op::Put { item, expected } => format!(
                "put {} {:?} {:?}",
                item.id,
                item.attributes,
                expected.as_ref().map(|h| (&h.attributes, &h.owner))
            ),
            Op::Delete { expected } => {
                format!(
                    "delete {} {:?} {:?}",
                    expected.id, expected.attributes, expected.owner
                )
            }
        };
        hasher.update(text.as_bytes());
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex[..32].to_owned()
}

/// A config value as a DynamoDB attribute. Numbers go as the decimal text they are.
pub fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.clone()),
        Value::String(s) | Value::Foreign(s) => AttributeValue::S(s.clone()),
        Value::List(items) => AttributeValue::L(items.iter().map(to_attribute).collect()),
        Value::Map(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), to_attribute(v)))
                .collect(),
        ),
    }
}

/// A DynamoDB attribute as a config value; what no source can write (sets, binary) is a
/// [`Value::Foreign`].
pub fn from_attribute(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => {
            canonical_number(n).map_or_else(|| Value::Foreign(format!("N {n}")), Value::Number)
        }
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(items) => Value::List(items.iter().map(from_attribute).collect()),
        AttributeValue::M(map) => Value::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), from_attribute(v)))
                .collect(),
        ),
        AttributeValue::Ss(items) => Value::Foreign(format!("SS {items:?}")),
        AttributeValue::Ns(items) => Value::Foreign(format!("NS {items:?}")),
        AttributeValue::B(_) | AttributeValue::Bs(_) => Value::Foreign("binary".into()),
        _ => Value::Foreign("an unknown type".into()),
    }
}
