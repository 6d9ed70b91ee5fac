# Hodges-Lehmann estimates and intervals from R's wilcox.test, for the Mann-Whitney golden
# values (analyzer/core/tests/golden/mann_whitney.json). Driven by generate.py; not meant to
# be run by hand, but it can be:
#
#     Rscript analyzer/core/tests/golden/wilcox.R < cases.txt > results.txt
#
# Input, one case per line, fields separated by single spaces:
#     <id> <alternative: two.sided|greater|less> <conf.level> <x1,x2,...> <y1,y2,...>
# with every number in C99 hexadecimal notation (float.hex() in Python), so R sees exactly
# the doubles the Rust test sees. Output, one line per input line:
#     <id> <estimate> <lower> <upper>
# in hexadecimal (sprintf("%a")), or "<id> error <message>" when R stops.
#
# Made with R 4.2.2 Patched (2022-11-10 r83330); stats::wilcox.test.default.

hex <- function(v) {
  if (is.na(v)) "NaN" else if (v == Inf) "Inf" else if (v == -Inf) "-Inf" else sprintf("%a", v)
}

con <- file("stdin")
lines <- readLines(con)
close(con)
for (line in lines) {
  if (!nzchar(line)) next
  f <- strsplit(line, " ", fixed = TRUE)[[1]]
  id <- f[1]
  alternative <- f[2]
  conf <- as.numeric(f[3])
  x <- as.numeric(strsplit(f[4], ",", fixed = TRUE)[[1]])
  y <- as.numeric(strsplit(f[5], ",", fixed = TRUE)[[1]])
  out <- tryCatch({
    r <- suppressWarnings(wilcox.test(x, y, alternative = alternative, conf.int = TRUE,
                                      conf.level = conf, exact = FALSE, correct = TRUE))
    paste(id, hex(unname(r$estimate)), hex(r$conf.int[1]), hex(r$conf.int[2]))
  }, error = function(e) paste(id, "error", gsub("[\r\n ]+", "_", conditionMessage(e))))
  cat(out, "\n", sep = "")
}
