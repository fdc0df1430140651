# El texto de la tienda en español. Cada id está también en ../en/main.ftl
# y se usa en src/ o templates/ (tests/catalogues.rs comprueba ambas cosas).

## La plantilla

shop-name = Librería
nav-label = Principal
nav-catalog = Catálogo
nav-cart = Carrito
nav-orders = Pedidos
nav-my-books = Mis libros
nav-admin = Administración
nav-signed-in-as = Sesión de
nav-log-out = Cerrar sesión
logout-title = ¿Cerrar la sesión en la tienda?
nav-log-in = Iniciar sesión
nav-register = Registrarse
# El selector muestra el otro idioma, en ese idioma.
lang-switch = Español
footer = Librería · clásicos de dominio público y libros de nuestros vendedores

## Inicio

home-title = Bienvenida
home-heading = Bienvenido a la Librería
home-lead = { $count ->
    [one] Un libro de nuestros vendedores, de Austen a Wilde. Encuentra uno, cómpralo en dos clics o vende los tuyos.
   *[other] { $count } libros de nuestros vendedores, de Austen a Wilde. Encuentra uno, cómpralo en dos clics o vende los tuyos.
}
home-lead-more = Más de { $count } libros de nuestros vendedores, de Austen a Wilde. Encuentra uno, cómpralo en dos clics o vende los tuyos.
search-label = Buscar por título o autor
search-placeholder = p. ej. Austen
search-button = Buscar
tile-catalog = Ver el catálogo
tile-catalog-text = Todos los libros, con búsqueda y orden
tile-sell = Vende tus libros
tile-sell-text = Publica, edita y retira tus propios libros
tile-orders = Tus pedidos
tile-orders-text = Envío, pago y estado
tile-admin-text = Administración

## Catálogo y página de un libro

catalog-title = Catálogo
sort-label = Ordenar por
sort-title = Título
sort-author = Autor
sort-price-low = Precio: de menor a mayor
sort-price-high = Precio: de mayor a menor
sort-newest = Novedades
sort-relevance = Relevancia
catalog-show = Mostrar
catalog-count = { $count ->
    [one] 1 libro
   *[other] { $count } libros
}
catalog-count-more = Más de { $count } libros
catalog-matching = que coinciden con «{ $search }»
catalog-none = No se encontraron libros.
catalog-show-all = Ver todos los libros
catalog-login-to-buy = para comprar.
pager-label = Páginas
pager-previous = Anterior
pager-next = Siguiente
pager-position = Página { $page } de { $pages }
pager-page = Página { $page }
pager-far = Páginas más adelante
stock-available = { $count ->
    [one] 1 disponible
   *[other] { $count } disponibles
}
out-of-stock = Agotado
quantity = Cantidad
quantity-most = Como máximo { $count } por pedido.
quantity-over-most = Un pedido lleva como máximo { $max } ejemplares de «{ $title }»{ $in_cart ->
    [0] {""}
   *[other] {""}, y tu carrito ya tiene { $in_cart }
}.
quantity-of = Cantidad de { $title }
buy-now = Comprar ya
add-to-cart = Añadir al carrito
book-cover-of = Portada de { $title }
book-by = de { $author }
book-edit-yours = Editar tu libro
book-login-to-buy = Inicia sesión para comprar
book-about = Sobre este libro
book-sold-by = Vendido por { $seller }

## Cuentas

login-title = Iniciar sesión
login-new-here = ¿Eres nuevo?
login-failed = No se pudo iniciar sesión: revisa tu correo electrónico y tu contraseña.
login-throttled-address = Demasiados intentos de inicio de sesión desde tu red. Espera unos minutos y vuelve a intentarlo.
login-throttled-account = Demasiados intentos fallidos para esta cuenta. Espera unos minutos y vuelve a intentarlo.
login-welcome-back = Hola de nuevo, { $name }.
register-heading = Crear una cuenta
register-lead = Con una cuenta puedes comprar libros y vender los tuyos.
register-password-hint = Al menos 8 caracteres.
register-already = ¿Ya tienes cuenta?
register-done = Tu cuenta está lista. Inicia sesión para empezar a comprar.
register-confirm-sent = Te hemos enviado un enlace para confirmar tu dirección. Hasta que la confirmes, tus pedidos no reservan sus ejemplares mientras pagas.
register-email-taken = Ese correo electrónico ya está registrado. ¿Quieres iniciar sesión?
register-throttled = Demasiadas cuentas nuevas desde tu red. Espera una hora y vuelve a intentarlo.
field-name = Nombre
field-email = Correo electrónico
field-password = Contraseña

## Datos de formularios

invalid-name-empty = Escribe tu nombre.
invalid-email-empty = Escribe tu correo electrónico.
invalid-email-too-long = Ese correo electrónico es demasiado largo.
invalid-email-shape = Escribe un correo electrónico como nombre@ejemplo.com.
invalid-password-empty = Elige una contraseña.
invalid-password-short = Usa al menos 8 caracteres.
invalid-password-long = Usa como máximo 128 caracteres.
invalid-text-one-line = Escríbelo en una sola línea.
invalid-name-reserved = Ese nombre es el de la propia tienda: elige otro.
invalid-text-control = Quita los caracteres de control invisibles (¿pegados de otro sitio?).
invalid-text-too-long = Como máximo { $max } caracteres.
invalid-title-empty = Escribe el título.
invalid-author-empty = Escribe el autor.
invalid-price-empty = Escribe un precio.
invalid-price-shape = Escribe el precio como número, por ejemplo 12,50.
invalid-price-decimals = Un precio tiene como máximo dos decimales.
invalid-price-zero = El precio debe ser mayor que cero.
invalid-price-max = Ese precio es demasiado alto: como máximo 100.000,00 US$.
invalid-quantity-empty = Escribe una cantidad.
invalid-quantity-whole = La cantidad debe ser un número entero.
invalid-quantity-low = La cantidad debe ser al menos 1.
invalid-quantity-high = Como máximo 100 ejemplares por pedido.
invalid-stock-empty = Escribe cuántos ejemplares tienes.
invalid-stock-whole = Las existencias deben ser un número entero.
invalid-stock-negative = Las existencias no pueden ser negativas.
invalid-stock-high = Como máximo 100000 ejemplares.

## Carrito

cart-title = Tu carrito
cart-empty = Tu carrito está vacío.
find-a-book = Busca un libro
col-book = Libro
col-price = Precio
col-subtotal = Subtotal
col-order = Pedido
col-status = Estado
col-total = Total
col-stock = Existencias
col-actions = Acciones
col-buyer = Comprador
col-placed = Realizado
col-id = Id
col-role = Rol
cart-only-left = { $count ->
    [one] Solo queda 1.
   *[other] Solo quedan { $count }.
}
cart-update = Actualizar
cart-remove = Quitar
cart-remove-title = Quitar { $title }
cart-books-total = Total de los libros
cart-delivery-next = El envío se elige en el paso siguiente.
cart-check-out = Tramitar pedido
cart-added = «{ $title }» se añadió a tu carrito.
cart-over-stock = { $stock ->
    [one] Solo queda 1
   *[other] Solo quedan { $stock }
}; ya tienes { $in_cart } en tu carrito.
cart-full = Tu carrito está lleno: tramita el pedido primero.

## Pedidos

steps-label = Pasos del pedido
steps-placed = Pedido realizado
steps-delivery = Envío
steps-payment = Pago
delivery-title = Envío del pedido n.º { $id }
delivery-books = Libros:
delivery-choose = Elige quién los lleva:
coverage-international = Internacional
coverage-national = Nacional
delivery-provider = Empresa de envío
delivery-continue = Continuar al pago
delivery-order-details = Detalles del pedido
delivery-choose-one = Elige una de las empresas de envío.
delivery-first = Elige primero una empresa de envío.
order-title = Pedido n.º { $id }
order-placed = Realizado el { $when }
order-paid = pagado el { $when }
order-reserved-until = reservado hasta el { $when }
summary-books = Libros
summary-delivery = Envío
summary-not-chosen = sin elegir
summary-total = Total
order-pay-now = Pagar ahora
order-choose-delivery = Elegir envío
order-cancel = Cancelar este pedido
order-cancelled = El pedido n.º { $id } se canceló.
orders-title = Tus pedidos
orders-none = Aún no tienes pedidos.
orders-pay = Pagar
payment-title = Pago del pedido n.º { $id }
payment-total = Total a pagar
payment-change-delivery = Cambiar el envío
payment-method = Forma de pago
payment-pay = Pagar { $amount }
payment-choose = Elige una forma de pago.
payment-received = ¡Gracias! Hemos recibido { $amount } por { $method }.
method-credit-card = Tarjeta de crédito
method-paypal = PayPal
method-bank-transfer = Transferencia bancaria
status-pending-payment = Pendiente de pago
status-unreserved = Pendiente de pago, sin reservar
order-open-until = abierto hasta el { $when }
order-unreserved-note = Estos ejemplares no están reservados para ti: son tuyos al pagar, salvo que alguien pague antes por ellos. Un pedido espera así cuando se hizo antes de confirmar la dirección de quien compra, o cuando quienes nunca han pagado ya reservan toda su parte de las existencias; cuando hayas pagado un pedido, tus pedidos siguientes reservarán sus ejemplares mientras pagas.
cart-unconfirmed-note = Tu dirección de correo aún no está confirmada, así que este pedido no reservará sus ejemplares mientras pagas: alguien que pague antes puede llevárselos. Confírmala con el enlace que te enviamos.
order-unconfirmed-note = Estos ejemplares no están reservados para ti: son tuyos al pagar, salvo que alguien pague antes por ellos. Los pedidos reservan sus ejemplares cuando confirmas tu dirección de correo con el enlace que te enviamos.
order-paid-too-late = Solo quedan { $available } de «{ $title }»: los ejemplares fueron para otros mientras este pedido esperaba sin reservar. No se ha pagado ni se ha cobrado nada; cancélalo y pide lo que queda.
status-paid = Pagado
status-cancelled = Cancelado
status-expired = Caducado
order-sold-out = «{ $title }» está agotado.
order-only-left = { $available ->
    [one] Solo queda 1 ejemplar
   *[other] Solo quedan { $available } ejemplares
} de «{ $title }»: reduce la cantidad.
order-book-gone = Ese libro ya no está a la venta.
order-own-book = Vendes «{ $title }»: no puedes comprarlo.
cart-book-gone = Un libro de tu carrito ya no está a la venta y lo hemos quitado. Revisa lo que queda y vuelve a finalizar la compra.
order-too-many-open = Ya tienes { $max } pedidos sin pagar, el máximo por cliente. Paga o cancela uno (Tus pedidos) antes de pedir más.
order-hold-limit = Puedes reservar como máximo { $max } ejemplares de «{ $title }» en pedidos sin pagar, y ya tienes { $held }. Paga o cancela esos pedidos primero, o pide menos.
order-try-again = Vuelve a intentarlo.
order-settled-paid = El pedido n.º { $id } está pagado: no hay nada más que hacer.
order-settled-cancelled = El pedido n.º { $id } está cancelado.
order-settled-expired = El pedido n.º { $id } caducó antes de pagarse: sus ejemplares volvieron a la venta.
order-price-changed = El precio de «{ $title }» cambió de { $shown } a { $now } desde que lo viste. No se ha comprado nada: vuelve a comprarlo al nuevo precio si aún lo quieres.
order-not-open = Este pedido ya no está pendiente de pago: ya se pagó, se canceló o caducó.
order-no-delivery = Elige una empresa de envío antes de pagar.

## Vender

sell-add-heading = Añadir un libro
sell-edit-heading = Editar tu libro
sell-added = «{ $title }» ya está a la venta.
sell-updated = «{ $title }» se actualizó.
sell-stock-moved = Se vendieron o liberaron ejemplares mientras este formulario estaba abierto: ahora hay { $stock }. Revisa las existencias y vuelve a guardar.
sell-removed = «{ $title }» se retiró de la tienda.
sell-none = Aún no tienes libros a la venta.
sell-edit = Editar
sell-delete = Eliminar
sell-delete-title = Eliminar { $title }
field-title = Título
field-author = Autor
field-description = Descripción
price-placeholder = 12,50
field-price = Precio (USD)
field-stock = Ejemplares disponibles
form-save = Guardar
form-cancel = Cancelar

## Administración

admin-users-title = Usuarios registrados
admin-orders-title = Resumen de pedidos
admin-orders-recent = los más recientes primero, 50 por página
admin-search = Buscar
admin-search-button = Buscar
admin-search-clear = Ver todo
admin-older = Anteriores
admin-no-match = No hay coincidencias.
role-admin = Administrador
role-shopper = Cliente

## Páginas de error

error-code = Error { $status }
error-back = Volver al catálogo
error-login-other = Iniciar sesión con otra cuenta
error-not-found = No encontrado
error-not-found-text = Aquí no hay nada. Puede que se haya retirado.
error-forbidden = No permitido
error-forbidden-text = No tienes permiso para ver o cambiar esto.
error-login = Inicia sesión
error-login-text = Inicia sesión para continuar.
error-cross-site = Formulario caducado
error-cross-site-text = Este formulario ha caducado o viene de otro sitio. Vuelve atrás, recarga la página e inténtalo de nuevo.
error-bad-request = Solicitud incorrecta
error-bad-request-text = No se pudo entender la solicitud.
error-conflict = No es posible
error-conflict-text = Eso no es posible en el estado actual.
error-too-many = Demasiados intentos
error-too-many-text = Demasiados intentos. Espera unos minutos y vuelve a intentarlo.
error-timeout = Demasiado lento
error-timeout-text = Tu solicitud llegó demasiado despacio. Vuelve a intentarlo.
error-too-large = Demasiado grande
error-too-large-text = Lo que enviaste es más grande de lo que acepta esta tienda.
error-unavailable = No disponible por el momento
error-unavailable-text = La tienda no está disponible durante unos instantes. Vuelve a intentarlo en un momento.
error-internal = Algo salió mal
error-internal-text = Algo salió mal por nuestra parte. Vuelve a intentarlo.
error-method = Aquí no se permite
error-method-text = Esta dirección no acepta ese tipo de solicitud.
error-other = Rechazada
error-other-text = No se pudo responder a la solicitud.

## Password reset (web/password.rs) and its mail (mail/letters.rs)
forgot-title = ¿Olvidaste tu contraseña?
forgot-lead = Escribe la dirección con la que te registraste. Si tiene una cuenta, le enviaremos un enlace para elegir una contraseña nueva.
forgot-submit = Enviarme un enlace
reset-sent = Si una cuenta usa esa dirección, le hemos enviado un enlace para elegir una contraseña nueva.
reset-throttled = Demasiadas solicitudes desde tu red. Espera un rato y vuelve a intentarlo.
reset-title = Elige una contraseña nueva
reset-new-password = Contraseña nueva
reset-submit = Guardar la contraseña nueva
reset-unusable = Este enlace no funciona: ya se usó, ha caducado o se copió incompleto.
reset-ask-again = Pedir un enlace nuevo
reset-done = Tu contraseña ha cambiado y se ha cerrado la sesión de tu cuenta en todas partes. Inicia sesión con la contraseña nueva.
mail-greeting = Hola, { $name }:
mail-reset-subject = Elige una contraseña nueva para tu cuenta de Bookstore
mail-reset-intro = Alguien, esperamos que tú, pidió restablecer la contraseña de tu cuenta de Bookstore.
mail-reset-action = Elige una contraseña nueva:
mail-reset-expiry = El enlace funciona una sola vez, durante { $minutes } minutos.
mail-reset-not-you = Si no lo pediste tú, ignora este correo: tu contraseña sigue igual.
mail-order-item = { $quantity } × { $title }: { $amount }
mail-order-books = Libros: { $amount }
mail-order-delivery = Envío ({ $provider }): { $amount }
mail-order-total = Total pagado: { $amount }
mail-receipt-subject = Tu recibo de Bookstore del pedido n.º { $number }
mail-receipt-intro = ¡Gracias! Recibimos tu pago del pedido n.º { $number } el { $date }:
mail-receipt-action = Ver tu pedido:
mail-receipt-closing = Guarda este correo como recibo.
mail-sale-subject = Vendiste libros en Bookstore (pedido n.º { $number })
mail-sale-intro = { $buyer } te compró en el pedido n.º { $number }:
mail-sale-earned = Tu venta: { $amount }
mail-sale-delivery = Se envía por { $provider }.
mail-sale-action = Ver tus libros y sus existencias:
mail-sale-closing = Gracias por vender en Bookstore.

## Address confirmation (web/address.rs) and its mail (mail/letters.rs)
confirm-title = Confirma tu dirección de correo
confirm-lead = Confirma que esta dirección es tuya y tus pedidos reservarán sus ejemplares mientras pagas.
confirm-submit = Confirmar mi dirección
confirm-unusable = Este enlace no funciona: ya se usó, ha caducado o se copió incompleto. Inicia sesión y pide uno nuevo desde tu carrito o desde un pedido que espera sin reserva.
confirm-done = Tu dirección de correo está confirmada. A partir de ahora, tus pedidos nuevos reservan sus ejemplares mientras pagas.
confirm-send-again = Envíame un enlace de confirmación
confirm-sent = Un enlace nuevo para confirmar tu dirección va en camino.
confirm-already = Tu dirección de correo ya está confirmada.
confirm-limited = Te hemos enviado varios enlaces en la última hora: usa el más reciente o vuelve a intentarlo más tarde.
mail-confirm-subject = Confirma tu dirección de correo en Bookstore
mail-confirm-intro = ¡Te damos la bienvenida a Bookstore! Confirma que esta dirección es tuya.
mail-confirm-action = Confirma tu dirección:
mail-confirm-expiry = El enlace funciona una vez, durante { $hours ->
    [one] una hora
   *[other] { $hours } horas
}.
mail-confirm-not-you = Si no creaste una cuenta en Bookstore, ignora este correo: sin el enlace no ocurre nada.
