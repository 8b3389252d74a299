-- wrk script: POSTs a Cloud API text request to the benchmark's stand-in.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"messaging_product":"whatsapp","to":"+5511900000001","type":"text","text":{"body":"wrk"}}'
