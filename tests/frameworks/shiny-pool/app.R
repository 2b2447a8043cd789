# tests/frameworks/shiny-pool.test.mjs serves this with rookd::serveWorkers(workers = 2):
# the page carries the pid of the worker that rendered its HTML, and an output (over the
# session's WebSocket) the pid of the worker that runs the session.
library(shiny)
ui <- function(req) {
  fluidPage(
    tags$span(id = "htmlpid", Sys.getpid()),
    numericInput("n", "n", value = 2),
    textOutput("sessionpid"),
    textOutput("double")
  )
}
server <- function(input, output, session) {
  output$sessionpid <- renderText(paste0("session ", Sys.getpid()))
  output$double <- renderText(paste("2n =", 2 * input$n))
}
shinyApp(ui, server)
