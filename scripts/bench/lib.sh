# Helpers shared by the bench scripts (sourced, not run).

# wait_idle PID: until that daemon's boot work (the clusterers' first tick over the whole set,
# the first reuse pass) is over: CPU under 5 % for three seconds in a row (at most 10 minutes).
wait_idle() {
  local pid=$1 quiet=0 prev now t0=$SECONDS
  prev=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  while (( quiet < 3 && SECONDS - t0 < 600 )); do
    sleep 1
    now=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    if (( now - prev < 5 )); then quiet=$((quiet + 1)); else quiet=0; fi
    prev=$now
  done
  echo "  (boot work over after $((SECONDS - t0)) s)" >&2
}
