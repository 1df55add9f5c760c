-- POSTs a 1 KiB body on every request (the post1k-* scenarios: small
-- bodies on keep-alive connections, read by the app or left unread), then
-- reports like report.lua.
wrk.method = "POST"
wrk.body = string.rep("p", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
