-- wrk script: every request asks for a different page of the list (offset = 50 × a random
-- number below PAGES, default 2000), so the page cache rarely holds the page asked for and
-- the figure is the cost of building pages.
local pages = tonumber(os.getenv("PAGES") or "2000")
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  local sep = string.find(wrk.path, "?", 1, true) and "&" or "?"
  return wrk.format(nil, wrk.path .. sep .. "offset=" .. (50 * math.random(0, pages - 1)))
end
