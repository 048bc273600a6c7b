-- wrk script for bench/signup: POST /api/subscribe, every request a new address.
-- Each thread's addresses carry the run's label (the script's argument) and the thread's number,
-- so no two requests of a benchmark, and no two runs, send the same address.
-- BENCH_PACE_MS in the environment, in whole milliseconds, is how long each connection waits after
-- an answer before its next request (wrk's delay(), defined only then): the paced run of bench/signup.
local threads = {}
local counter = 0
local label = "run"

function setup(thread)
    thread:set("number", #threads + 1)
    table.insert(threads, thread)
end

function init(args)
    label = (args[1] or "run") .. "-" .. tostring(number)
    refused = 0
end

local pause = tonumber(os.getenv("BENCH_PACE_MS") or "")
if pause then
    function delay()
        return pause
    end
end

function request()
    counter = counter + 1
    local body = string.format('{"email": "s%s-%d@example.com"}', label, counter)
    return wrk.format("POST", "/api/subscribe", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
    if status ~= 202 then refused = refused + 1 end
end

function done(summary, latency, requests)
    local total = 0
    for _, thread in ipairs(threads) do total = total + thread:get("refused") end
    io.write(string.format("not202 %d\n", total))
end
