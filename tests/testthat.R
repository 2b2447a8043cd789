library(testthat)
library(rookd)

test_check("rookd")
