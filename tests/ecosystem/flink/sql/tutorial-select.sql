-- The Flink tutorial's Kinesis table, verbatim but for 'aws.endpoint' (Tideline's address).
-- Legacy/4.x factory syntax ('stream' = name). ${input_stream} and ${endpoint} are filled in by
-- the runner (SqlTest here; the SQL analytics work runs the same file on Tideline).
CREATE TABLE kinesis_stream (id STRING, message STRING) WITH ('connector' = 'kinesis', 'stream' = '${input_stream}', 'aws.region' = 'us-east-1', 'aws.endpoint' = '${endpoint}', 'format' = 'json');
SELECT * FROM kinesis_stream;
