-- The same windowed INSERT as ../tumble-window-insert.sql in the current (5.x connector) form:
-- 'stream.arn' and 'source.init.position'. Flink does not run this file here: the 5.x Kinesis
-- connectors for Flink 1.20 are not served by this project's Maven registry (see README "Works
-- with"); it is kept for the SQL analytics work, whose results it must match
-- (../tumble-window-insert.expected.jsonl).
CREATE TABLE readings (
  id STRING,
  message STRING,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'kinesis',
  'stream.arn' = 'arn:aws:kinesis:us-east-1:000000000000:stream/${input_stream}',
  'aws.region' = 'us-east-1',
  'aws.endpoint' = '${endpoint}',
  'source.init.position' = 'TRIM_HORIZON',
  'format' = 'json'
);
CREATE TABLE window_counts (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  id STRING,
  messages BIGINT
) WITH (
  'connector' = 'kinesis',
  'stream.arn' = 'arn:aws:kinesis:us-east-1:000000000000:stream/${output_stream}',
  'aws.region' = 'us-east-1',
  'aws.endpoint' = '${endpoint}',
  'format' = 'json'
);
INSERT INTO window_counts
SELECT window_start, window_end, id, COUNT(*) AS messages
FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, id;
