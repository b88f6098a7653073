-- wrk script: POST a ~1 KB JSON paste (the Primer's average size) to /pastes/.
wrk.method = "POST"
wrk.path = "/pastes/"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text": "' .. string.rep("x", 1000) .. '"}'
