<?php
/**
 * The heartbeat figures of one shop, read from pulsed's status file.
 *
 * Returns null when the file cannot be read (pulsed stopped, open_basedir, a
 * wrong path) or does not hold that shop; otherwise an array with
 * 'last_heartbeat' (a Unix time or null), 'delivered_7d' (a share 0..1 or null),
 * 'next_due' (a Unix time or null), 'failures_in_a_row' and 'line', the sentence
 * an admin page shows: "last heartbeat 12 minutes ago, 99.4 % delivered over
 * 7 days, next at 14:05" (the time in PHP's date.timezone). A shop entry with a
 * field of the wrong type or range is not trusted: its figures are null and
 * 'line' says which field is malformed, so the page still renders. A shop whose
 * configuration cannot work (pulsed lists it as disabled) keeps its last figures,
 * and 'line' starts with what is wrong: "heartbeat off: pulsed cannot work with
 * this shop's shop.root (run pulsed check)".
 */
function pulsed_heartbeat_figures($file = '/run/pulsed/status.json', $shop = 'default', $now = null)
{
    $now = $now === null ? time() : $now;
    $raw = @file_get_contents($file, false, null, 0, 1048576);
    $doc = $raw === false ? null : json_decode($raw, true);
    if (!is_array($doc) || ($doc['schema'] ?? null) !== 1 || !is_array($doc['shops'] ?? null)) {
        return null;
    }
    foreach ($doc['shops'] as $s) {
        if (!is_array($s) || ($s['name'] ?? null) !== $shop) {
            continue;
        }
        // Every field is checked before use: an array where a string belongs would be a
        // TypeError (a blank page), and a string share would compare as "100 %".
        $problem = null;
        foreach (['last_success', 'next_due'] as $key) {
            $value = $s[$key] ?? null;
            if ($value !== null && (!is_string($value) || strtotime($value) === false)) {
                $problem = "$key is not a time";
            }
        }
        $share = $s['delivered_share_7d'] ?? null;
        if ($share !== null && (!(is_int($share) || is_float($share)) || $share < 0 || $share > 1)) {
            $problem = 'delivered_share_7d is not a share from 0 to 1';
        }
        $failures = $s['failures_in_a_row'] ?? 0;
        if (!is_int($failures) || $failures < 0) {
            $problem = 'failures_in_a_row is not a count';
        }
        $setting = $s['problem_setting'] ?? null;
        if ($setting !== null && (!is_string($setting) || !preg_match('/^[a-z_.]{1,64}$/', $setting))) {
            $problem = 'problem_setting is not a setting name';
        }
        if ($problem !== null) {
            return [
                'last_heartbeat' => null,
                'delivered_7d' => null,
                'next_due' => null,
                'failures_in_a_row' => null,
                'line' => "status file malformed: $problem",
            ];
        }
        $last = isset($s['last_success']) ? strtotime($s['last_success']) : false;
        $next = isset($s['next_due']) ? strtotime($s['next_due']) : false;

        if ($last === false) {
            $line = 'no heartbeat yet';
        } else {
            $age = max(0, $now - $last);
            if ($age < 60) {
                $ago = 'less than a minute';
            } elseif ($age < 7200) {
                $ago = intdiv($age, 60) . (intdiv($age, 60) === 1 ? ' minute' : ' minutes');
            } elseif ($age < 172800) {
                $ago = intdiv($age, 3600) . ' hours';
            } else {
                $ago = intdiv($age, 86400) . ' days';
            }
            $line = "last heartbeat $ago ago";
        }
        if ($share === null) {
            $line .= ', no delivery in 7 days';
        } else {
            // Rounded down, so one failure in a thousand never reads as 100 %.
            $line .= ', ' . ($share >= 1 ? '100' : sprintf('%.1f', floor($share * 1000) / 10))
                . ' % delivered over 7 days';
        }
        if (($s['problem'] ?? null) === 'disabled') {
            $what = $setting === null ? 'its settings' : "this shop's $setting";
            $line = "heartbeat off: pulsed cannot work with $what (run pulsed check); $line";
        } elseif ($next === false || $next <= $now) {
            $line .= ', next now';
        } else {
            $line .= ', next at ' . date($next - $now < 86400 ? 'H:i' : 'Y-m-d H:i', $next);
        }
        return [
            'last_heartbeat' => $last === false ? null : $last,
            'delivered_7d' => $share,
            'next_due' => $next === false ? null : $next,
            'failures_in_a_row' => $failures,
            'line' => $line,
        ];
    }
    return null;
}
