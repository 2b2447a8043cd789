# A small Shiny app for tests/frameworks: inputs, text and plot outputs, an upload, a
# download, and a button that keeps R busy for 3 s. It knows nothing of rookd; the
# "engine" output only reports which server package answers.
library(shiny)

ui <- fluidPage(
  titlePanel("rookd framework test"),
  numericInput("n", "n", value = 5, min = 1, max = 100),
  sliderInput("s", "s", min = 1, max = 100, value = 10),
  textOutput("product"),
  textOutput("engine"),
  plotOutput("plot", width = "300px", height = "200px"),
  fileInput("up", "Upload a file"),
  textOutput("upinfo"),
  downloadButton("dl", "Download"),
  actionButton("busy", "Keep R busy"),
  textOutput("busydone")
)

server <- function(input, output, session) {
  output$product <- renderText(paste("n*s =", input$n * input$s))
  output$engine <- renderText({
    routed <- identical(topenv(environment(httpuv::startServer)), asNamespace("rookd"))
    paste("engine:", if (routed) "rookd" else "httpuv")
  })
  output$plot <- renderPlot(plot(seq_len(input$n), main = paste("n =", input$n)))
  output$upinfo <- renderText({
    req(input$up)
    paste0("uploaded ", input$up$name, " (", input$up$size, " bytes): ",
           readLines(input$up$datapath, n = 1, warn = FALSE))
  })
  output$dl <- downloadHandler(
    filename = function() "numbers.txt",
    content = function(file) writeLines(c(paste("n =", input$n), paste("s =", input$s)), file)
  )
  busy_count <- reactiveVal(0)
  observeEvent(input$busy, {
    Sys.sleep(3)  # R is busy: static files must still be served meanwhile
    busy_count(busy_count() + 1)
  })
  output$busydone <- renderText(if (busy_count() > 0) paste("busy done", busy_count()) else "")
}

shinyApp(ui, server)
