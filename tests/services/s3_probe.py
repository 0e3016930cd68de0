"""What the S3 tests read back from moto, through boto3 (a second, independent S3 client).

usage: s3_probe.py ENDPOINT head BUCKET KEY          -> JSON of the object's headers
       s3_probe.py ENDPOINT get BUCKET KEY FILE      -> downloads the object to FILE
       s3_probe.py ENDPOINT list BUCKET PREFIX       -> JSON list of keys
       s3_probe.py ENDPOINT uploads BUCKET           -> JSON count of unfinished multipart uploads
       s3_probe.py ENDPOINT put BUCKET KEY FILE      -> uploads FILE as KEY (a foreign or edited object)
       s3_probe.py ENDPOINT mkbucket BUCKET          -> creates BUCKET unless it exists
"""
import json, sys
import boto3

endpoint, command, bucket, *rest = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
if command == "head":
    h = s3.head_object(Bucket=bucket, Key=rest[0])
    until = h.get("ObjectLockRetainUntilDate")
    print(json.dumps({
        "size": h["ContentLength"], "etag": h["ETag"].strip('"'),
        "storage_class": h.get("StorageClass", "STANDARD"),
        "encryption": h.get("ServerSideEncryption"),
        "lock_mode": h.get("ObjectLockMode"),
        "lock_until": until.timestamp() if until else None,
    }))
elif command == "get":
    s3.download_file(bucket, rest[0], rest[1])
elif command == "list":
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=rest[0])
    print(json.dumps([o["Key"] for p in pages for o in p.get("Contents", [])]))
elif command == "uploads":
    print(json.dumps(len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))))
elif command == "put":
    s3.upload_file(rest[1], bucket, rest[0])
elif command == "mkbucket":
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
