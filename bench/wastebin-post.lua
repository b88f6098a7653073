-- wrk script: POST a ~1 KB JSON paste to wastebin's API (POST /), the same body as
-- post.lua sends to pastebin.
wrk.method = "POST"
wrk.path = "/"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text": "' .. string.rep("x", 1000) .. '"}'
