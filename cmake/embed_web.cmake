# Generates a C file holding web/dashboard.html, so the binary serves the dashboard from
# anywhere. The page's <meta> Content-Security-Policy names its one inline <script> and
# one <style> by hash; this fills in @SCRIPT_HASH@ and @STYLE_HASH@ (the hashes of the
# exact bytes between the tags, as browsers compute them), so nothing else may run.
# Run as: cmake -DSRC=web/dashboard.html -DOUT=.../web_gen.c -P this-file
file(READ "${SRC}" page)

# sha256 of text, as CSP writes it: 'sha256-<base64 of the 32 bytes>'.
function(csp_hash text out)
  string(SHA256 hex "${text}")
  set(abc "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
  set(b64 "")
  # 30 bytes in ten groups of three, then two bytes and one '='.
  foreach(i RANGE 0 54 6)
    string(SUBSTRING "${hex}" ${i} 6 g)
    math(EXPR v "0x${g}")
    foreach(shift 18 12 6 0)
      math(EXPR c "(${v} >> ${shift}) & 63")
      string(SUBSTRING "${abc}" ${c} 1 ch)
      string(APPEND b64 "${ch}")
    endforeach()
  endforeach()
  string(SUBSTRING "${hex}" 60 4 g)
  math(EXPR v "0x${g} << 2")
  foreach(shift 12 6 0)
    math(EXPR c "(${v} >> ${shift}) & 63")
    string(SUBSTRING "${abc}" ${c} 1 ch)
    string(APPEND b64 "${ch}")
  endforeach()
  set(${out} "sha256-${b64}=" PARENT_SCOPE)
endfunction()

# The text between <TAG> and </TAG>; exactly one such element.
function(element_text tag out)
  string(FIND "${page}" "<${tag}>" open)
  string(FIND "${page}" "<${tag}>" open_last REVERSE)
  string(FIND "${page}" "</${tag}>" close)
  if(open EQUAL -1 OR close EQUAL -1 OR NOT open EQUAL open_last)
    message(FATAL_ERROR "${SRC}: expected exactly one <${tag}> ... </${tag}> (without attributes)")
  endif()
  string(LENGTH "<${tag}>" tl)
  math(EXPR start "${open} + ${tl}")
  math(EXPR len "${close} - ${start}")
  string(SUBSTRING "${page}" ${start} ${len} text)
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# No external URLs: the page must work offline and load nothing from elsewhere (the SVG
# namespace is a name, not a fetch).
string(REPLACE "http://www.w3.org/2000/svg" "" scan "${page}")
if(scan MATCHES "https?://")
  message(FATAL_ERROR "${SRC}: holds an external URL; the dashboard loads nothing from elsewhere")
endif()

element_text(script script_text)
element_text(style style_text)
csp_hash("${script_text}" script_hash)
csp_hash("${style_text}" style_hash)
foreach(ph @SCRIPT_HASH@ @STYLE_HASH@)
  string(FIND "${page}" "${ph}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${SRC}: its Content-Security-Policy must name ${ph}")
  endif()
endforeach()
string(REPLACE "@SCRIPT_HASH@" "${script_hash}" page "${page}")
string(REPLACE "@STYLE_HASH@" "${style_hash}" page "${page}")

string(LENGTH "${page}" size)
string(HEX "${page}" hex)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
set(body "/* Generated from web/dashboard.html by cmake/embed_web.cmake. Do not edit. */\n")
string(APPEND body "#include \"api_dashboard.h\"\n\n")
string(APPEND body "const char rt_web_dashboard_html[] = {${hex}0};\n")
string(APPEND body "const size_t rt_web_dashboard_html_len = ${size};\n")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
