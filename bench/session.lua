-- The wrk script of the bench's external-load session benchmarks
-- (httpload.go). Every request carries the cookie of one of the sessions
-- the bench made beforehand, taking them in turn, so that every request
-- loads a session (and on /rw saves it) and no two requests in flight
-- share one. Arguments after "--": the file of Cookie header values, one a
-- line, and wrk's number of threads (each thread takes every n-th line).
-- When done it prints one line for the bench:
--   memkit-bench-wrk requests duration_us connect read write status timeout p50_us p99_us

local threads = 0

-- setup runs in the main Lua state, once per thread, before the thread's
-- init: it numbers the threads.
function setup(thread)
	thread:set("thread_index", threads)
	threads = threads + 1
end

local requests = {}
local turn = 0

function init(args)
	local nthreads = tonumber(args[2])
	local i = 0
	for line in io.lines(args[1]) do
		if i % nthreads == thread_index then
			requests[#requests + 1] = wrk.format(nil, nil, { Cookie = line })
		end
		i = i + 1
	end
	if #requests == 0 then
		error("no cookies for thread " .. thread_index .. " in " .. args[1])
	end
end

function request()
	turn = turn % #requests + 1
	return requests[turn]
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("memkit-bench-wrk %d %d %d %d %d %d %d %d %d\n",
		summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
		latency:percentile(50), latency:percentile(99)))
end
