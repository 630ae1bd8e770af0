-- Per-sensor message counts over 10-second tumbling event-time windows, written to another stream.
-- Legacy/4.x factory options (the connector served for Flink 1.20 here); the same query in the
-- 5.x 'stream.arn' form is current-form/tumble-window-insert.sql.
CREATE TABLE readings (
  id STRING,
  message STRING,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'kinesis',
  'stream' = '${input_stream}',
  'aws.region' = 'us-east-1',
  'aws.endpoint' = '${endpoint}',
  'scan.stream.initpos' = 'TRIM_HORIZON',
  'format' = 'json'
);
CREATE TABLE window_counts (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  id STRING,
  messages BIGINT
) WITH (
  'connector' = 'kinesis',
  'stream' = '${output_stream}',
  'aws.region' = 'us-east-1',
  'aws.endpoint' = '${endpoint}',
  'format' = 'json'
);
INSERT INTO window_counts
SELECT window_start, window_end, id, COUNT(*) AS messages
FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, id;
